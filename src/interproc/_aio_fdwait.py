"""The asyncio waiter for futex-based objects that have a doorbell descriptor
(shm:// channels and listeners, pub/sub): however many tasks of one object
wait, the descriptor is watched once (``loop.add_reader`` keeps one callback
per fd), and only while somebody waits, so an idle object costs the selector
nothing.  The reader callback drains the doorbell *before* it wakes the
waiters, which then re-check their object and re-arm: no wake-up is lost.
"""

from __future__ import annotations

import asyncio
from typing import Callable


def _wake(fut: "asyncio.Future[None]") -> None:
    if not fut.done():
        fut.set_result(None)


class FdWaiters:
    """Tasks waiting on one doorbell descriptor; ``drain`` empties it."""

    def __init__(self, drain: Callable[[], object]) -> None:
        self._drain = drain
        self._waiters: list[asyncio.Future[None]] = []
        self._reader: tuple[asyncio.AbstractEventLoop, int] | None = None

    def _ring(self) -> None:
        self._drain()
        for fut in self._waiters:
            _wake(fut)

    def unwatch(self) -> None:
        if self._reader is not None:
            loop, fd = self._reader
            self._reader = None
            if not loop.is_closed():
                loop.remove_reader(fd)

    def wake_all(self) -> None:
        """Wake every waiter (they re-check, e.g. find their object closed)."""
        for fut in self._waiters:
            _wake(fut)

    async def wait(self, fd: int, deadline: float | None, slice_: float | None = None) -> None:
        """Until the doorbell rings, the loop-time ``deadline`` or ``slice_``
        seconds pass; the caller re-checks either way."""
        loop = asyncio.get_running_loop()
        if self._reader != (loop, fd):
            self.unwatch()
            loop.add_reader(fd, self._ring)
            self._reader = (loop, fd)
        wake_at = deadline
        if slice_ is not None:
            wake_at = loop.time() + slice_ if wake_at is None else min(wake_at, loop.time() + slice_)
        fut: asyncio.Future[None] = loop.create_future()
        timer = None if wake_at is None else loop.call_at(wake_at, _wake, fut)
        self._waiters.append(fut)
        try:
            await fut
        finally:
            self._waiters.remove(fut)
            if timer is not None:
                timer.cancel()
            if not self._waiters:
                self.unwatch()
