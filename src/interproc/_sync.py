"""Named synchronisation objects usable by unrelated processes.

Each object is a small segment of its own kind (``mutex``, ``semaphore``,
``event``), created or opened like Win32's CreateMutex / CreateSemaphore /
CreateEvent: the first caller creates it, later callers open it and their
creation arguments are ignored (``created`` tells which happened).

Waiting is a futex sleep on a 32-bit word of the segment, with a waiter
count so that the common uncontended release costs no system call.
"""

from __future__ import annotations

import struct
import threading
import time
from typing import Any

from . import _native
from ._deadline import deadline_of as _deadline
from ._naming import Scope
from ._shm import SharedMemory, register_details

_U32 = {"size": 4, "signed": False}
RECHECK = 0.05  # the longest a waiter sleeps without looking at the count again
_SEMAPHORE, _EVENT = 0, 1  # kinds of _native.wait_take / _native.post


def _left(deadline: float | None) -> float | None:
    """Seconds left, None for no deadline, or -1.0 once it has passed."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    return left if left > 0 else -1.0


def _wait_for(buf: memoryview, take: Any, deadline: float | None,
              cancel: threading.Event | None) -> bool:
    """Sleep on the futex word at offset 0 until ``take()`` succeeds.

    The word at offset 8 counts sleepers so that wakers can skip the system
    call when nobody sleeps.  ``cancel`` (set by asyncio wrappers, followed
    by a wake-up) makes the wait give up and return False.
    """
    while True:
        if take():
            return True
        left = _left(deadline)
        if (left is not None and left < 0) or (cancel is not None and cancel.is_set()):
            return False
        # Bounded sleeps: the canceller's wake-up can slip in between the
        # check above and the sleep below, and a woken process that dies
        # before taking the count wakes nobody else (as in the C loop).
        left = RECHECK if left is None else min(left, RECHECK)
        _native.atomic_add(buf, 8, 1, **_U32)
        try:
            _native.futex_wait(buf, 0, 0, left)
        finally:
            _native.atomic_add(buf, 8, -1, **_U32)


class RobustLock:
    """A robust, recursive, process-shared mutex at ``(buf, offset)``.

    ``acquire`` succeeds even if the previous owner died holding the lock, and
    then sets ``abandoned`` until the new holder releases it (the Win32
    WAIT_ABANDONED rule).  Owned by a thread, like a Win32 mutex.  The
    bookkeeping lives in the C object, so an uncontended lock/unlock costs
    two calls into C and nothing else.
    """

    def __init__(self, buf: memoryview, offset: int = 0) -> None:
        self._m = _native.RobustMutex(buf, offset)
        self.acquire = self._m.acquire  # (blocking=True, timeout=None) -> bool

    @staticmethod
    def initialise(buf: memoryview, offset: int = 0) -> None:
        _native.mutex_init(buf, offset)

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:  # type: ignore[no-redef]
        """Acquire the lock; False if ``timeout`` (or ``blocking=False``) ran out."""
        return self._m.acquire(blocking, timeout)  # pragma: no cover - replaced per instance

    def release(self) -> None:
        try:
            self._m.release()
        except OSError as exc:
            raise RuntimeError("cannot release a mutex this thread does not hold") from exc

    @property
    def abandoned(self) -> bool:
        return self._m.abandoned

    def locked_by_me(self) -> bool:
        return self._m.held

    def close(self) -> None:
        """Let go of the mapping (the mutex in shared memory is untouched)."""
        self._m.close()

    def __enter__(self) -> "RobustLock":
        self._m.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class _Named:
    """Shared plumbing: one segment of kind KIND, opened or created."""

    KIND = ""
    SIZE = 64

    def __init__(self, name: str, *, scope: Scope = "user", mode: int | None = None,
                 timeout: float | None = None) -> None:
        seg_cls = _segment_class(self.KIND)
        self._shm = seg_cls.create_or_open(name, self.SIZE, init=self._init, scope=scope,
                                           mode=mode, timeout=timeout)
        self._buf = self._shm.buf
        self.name = name
        self.created = self._shm.created

    def _init(self, buf: memoryview) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._shm.close()

    @property
    def closed(self) -> bool:
        return self._shm.closed

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}{' closed' if self.closed else ''}>"


_SEGMENT_CLASSES: dict[str, type[SharedMemory]] = {}


def _segment_class(kind: str) -> type[SharedMemory]:
    """A SharedMemory subclass whose segments are named with ``kind``."""
    if kind not in _SEGMENT_CLASSES:
        _SEGMENT_CLASSES[kind] = type(f"_{kind.title()}Segment", (SharedMemory,), {"KIND": kind})
    return _SEGMENT_CLASSES[kind]


class Mutex(_Named):
    """A named, robust, recursive mutex (Win32 CreateMutex).

    If its owner dies holding it, the next ``acquire`` still succeeds and sets
    ``abandoned = True`` until that holder releases.
    """

    KIND = "mutex"

    def __init__(self, name: str, *, scope: Scope = "user", mode: int | None = None,
                 timeout: float | None = None) -> None:
        super().__init__(name, scope=scope, mode=mode, timeout=timeout)
        self._lock = RobustLock(self._buf, 0)
        self.acquire = self._lock.acquire  # straight into C: (blocking=True, timeout=None) -> bool

    def _init(self, buf: memoryview) -> None:
        RobustLock.initialise(buf, 0)

    @property
    def abandoned(self) -> bool:
        return self._lock.abandoned

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:  # type: ignore[no-redef]
        """Acquire; False on timeout (replaced per instance by the C method)."""
        return self._lock.acquire(blocking, timeout)  # pragma: no cover

    def release(self) -> None:
        self._lock.release()

    def close(self) -> None:
        self._lock.close()
        super().close()

    def __enter__(self) -> "Mutex":
        self._lock.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


# Semaphore layout: count u32 @0 (futex word), maximum u32 @4, waiters u32 @8
class Semaphore(_Named):
    """A named counting semaphore (Win32 CreateSemaphore).

    ``initial`` and ``maximum`` apply when this call creates it.  Releasing
    past ``maximum`` raises ``ValueError`` (ERROR_TOO_MANY_POSTS).  Like a
    Win32 semaphore, a count taken by a process that dies is not returned.
    """

    KIND = "semaphore"
    MAX = 0x7FFFFFFF

    def __init__(self, name: str, initial: int = 1, *, maximum: int | None = None,
                 scope: Scope = "user", mode: int | None = None, timeout: float | None = None) -> None:
        maximum = self.MAX if maximum is None else maximum
        if not 0 < maximum <= self.MAX:
            raise ValueError(f"maximum must be 1..{self.MAX}, got {maximum}")
        if not 0 <= initial <= maximum:
            raise ValueError(f"initial must be 0..maximum ({maximum}), got {initial}")
        self._initial, self._maximum = initial, maximum
        super().__init__(name, scope=scope, mode=mode, timeout=timeout)

    def _init(self, buf: memoryview) -> None:
        struct.pack_into("<III", buf, 0, self._initial, self._maximum, 0)

    @property
    def maximum(self) -> int:
        return _native.atomic_load(self._buf, 4, **_U32)

    @property
    def value(self) -> int:
        """The current count (a snapshot)."""
        return _native.atomic_load(self._buf, 0, **_U32)

    def acquire(self, blocking: bool = True, timeout: float | None = None,
                _cancel: threading.Event | None = None) -> bool:
        if _cancel is None:
            return _native.wait_take(self._buf, 0, _SEMAPHORE, timeout if blocking else 0.0)
        buf = self._buf

        def take() -> bool:
            while (v := _native.atomic_load(buf, 0, **_U32)) > 0:
                if _native.atomic_compare_exchange(buf, 0, v, v - 1, **_U32)[0]:
                    return True
            return False

        return _wait_for(buf, take, _deadline(timeout if blocking else 0.0), _cancel)

    def release(self, count: int = 1) -> int:
        """Add ``count``; returns the previous count."""
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        try:
            return _native.post(self._buf, 0, _SEMAPHORE, count)
        except (ValueError, OverflowError) as exc:
            raise ValueError(f"semaphore {self.name!r}: {exc}") from None

    def __enter__(self) -> "Semaphore":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# Event layout: state u32 @0 (futex word), manual_reset u32 @4, waiters u32 @8
class Event(_Named):
    """A named event (Win32 CreateEvent).

    Manual-reset events stay set until ``reset()`` and release every waiter;
    auto-reset events release exactly one waiter per ``set()`` and reset
    themselves.  ``manual_reset`` and ``initial`` apply when this call
    creates the event; an opened event keeps the creator's kind.
    """

    KIND = "event"

    def __init__(self, name: str, *, manual_reset: bool = False, initial: bool = False,
                 scope: Scope = "user", mode: int | None = None, timeout: float | None = None) -> None:
        self._want = (int(bool(initial)), int(bool(manual_reset)))
        super().__init__(name, scope=scope, mode=mode, timeout=timeout)

    def _init(self, buf: memoryview) -> None:
        struct.pack_into("<III", buf, 0, self._want[0], self._want[1], 0)

    @property
    def manual_reset(self) -> bool:
        return bool(_native.atomic_load(self._buf, 4, **_U32))

    def is_set(self) -> bool:
        return bool(_native.atomic_load(self._buf, 0, **_U32))

    def set(self) -> None:
        _native.post(self._buf, 0, _EVENT)

    def reset(self) -> None:
        _native.atomic_store(self._buf, 0, 0, **_U32)

    def wait(self, timeout: float | None = None, _cancel: threading.Event | None = None) -> bool:
        """Wait until set; auto-reset events are reset by the waiter they release."""
        if _cancel is None:
            return _native.wait_take(self._buf, 0, _EVENT, timeout)
        buf = self._buf
        if self.manual_reset:
            def take() -> bool:
                return bool(_native.atomic_load(buf, 0, **_U32))
        else:
            def take() -> bool:
                return _native.atomic_compare_exchange(buf, 0, 1, 0, **_U32)[0]
        return _wait_for(buf, take, _deadline(timeout), _cancel)


def wake_waiters(obj: Semaphore | Event) -> None:
    """Wake every thread asleep on ``obj``'s futex word; each looks again and
    sleeps on (a wake-up for nothing is harmless).  The asyncio face calls it
    after setting a waiter's ``cancel`` event, to free that thread at once."""
    _native.futex_wake(obj._buf, 0)


def _details(kind: str) -> Any:
    def describe(buf: memoryview) -> dict:
        if kind == "semaphore":
            count, maximum, waiters = struct.unpack_from("<III", buf, 0)
            return {"count": count, "maximum": maximum, "waiters": waiters}
        state, manual, waiters = struct.unpack_from("<III", buf, 0)
        return {"set": bool(state), "manual_reset": bool(manual), "waiters": waiters}
    return describe


register_details("semaphore", _details("semaphore"))
register_details("event", _details("event"))
