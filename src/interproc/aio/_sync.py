"""asyncio waits on named Event and Semaphore objects.

The wait is :func:`interproc._aio_futex.futex_wait` (the one asyncio waiter
for futex-based objects): a thread asleep on the object's futex, cancelled
at once, a count or signal taken in that instant given back.

``Mutex`` has no asyncio twin: a robust mutex belongs to the thread that
locked it, and an event loop runs many tasks on one thread.  Use
``asyncio.to_thread`` around a whole critical section instead.
"""

from __future__ import annotations

from .. import _sync
from .._naming import Scope
from .._aio_futex import futex_wait as _in_thread


class Event:
    """``interproc.sync.Event`` with ``await event.wait(timeout=)``."""

    def __init__(self, name: str, *, manual_reset: bool = False, initial: bool = False,
                 scope: Scope = "user", mode: int | None = None) -> None:
        self._event = _sync.Event(name, manual_reset=manual_reset, initial=initial, scope=scope, mode=mode)
        self.name, self.created = name, self._event.created

    async def wait(self, timeout: float | None = None) -> bool:
        ev = self._event
        give_back = (lambda: None) if ev.manual_reset else ev.set
        return await _in_thread(lambda c: ev.wait(timeout, _cancel=c), lambda: _sync.wake_waiters(ev), give_back)

    def set(self) -> None:
        self._event.set()

    def reset(self) -> None:
        self._event.reset()

    def is_set(self) -> bool:
        return self._event.is_set()

    def close(self) -> None:
        self._event.close()

    async def __aenter__(self) -> "Event":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class Semaphore:
    """``interproc.sync.Semaphore`` with ``await sem.acquire(timeout=)``."""

    def __init__(self, name: str, initial: int = 1, *, maximum: int | None = None,
                 scope: Scope = "user", mode: int | None = None) -> None:
        self._sem = _sync.Semaphore(name, initial, maximum=maximum, scope=scope, mode=mode)
        self.name, self.created = name, self._sem.created

    async def acquire(self, timeout: float | None = None) -> bool:
        sem = self._sem
        return await _in_thread(lambda c: sem.acquire(True, timeout, _cancel=c), lambda: _sync.wake_waiters(sem), sem.release)

    def release(self, count: int = 1) -> int:
        return self._sem.release(count)

    @property
    def value(self) -> int:
        return self._sem.value

    def close(self) -> None:
        self._sem.close()

    async def __aenter__(self) -> "Semaphore":
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()
