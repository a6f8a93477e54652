"""asyncio face of shared-memory publish/subscribe (``interproc.shm.Publisher``
and ``Subscriber``).

The data path is the blocking objects' C core, called without blocking
(``timeout=0``); only the waiting differs.  A waiting side uses its core's
doorbell (src/native/doorbell.h, the one shm:// channels use too): a pipe
published in the segment, in an epoll set with the other side's pidfd where
there is one, watched with ``loop.add_reader`` -- so one event loop serves
any number of them with no thread each.  ``core.arm()`` sets the one-shot
``fdwait`` word, counts this side as a sleeper (the counters the other side
already checks after every publish/release, so the hot path does not
change), fences and re-checks; ``core.disarm()`` stops counting.  The other
side, seeing a sleeper, clears ``fdwait`` and rings.  The reader callback
drains the doorbell before the waiter re-checks, so no wake-up is lost.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

from .._errors import ChannelClosed, Timeout
from .._aio_fdwait import FdWaiters
from .._naming import Scope
from .._pubsub import DEFAULT_MAX_SUBSCRIBERS, DEFAULT_SPIN, SLICE
from .._pubsub import Publisher as _Publisher, Sample, Subscriber as _Subscriber


def _deadline(timeout: float | None) -> float | None:
    if timeout is None:
        return None
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout != timeout or timeout < 0:
        raise ValueError(f"timeout must be None or >= 0 seconds, not {timeout!r}")
    return asyncio.get_running_loop().time() + timeout


class Subscriber:
    """``async`` twin of :class:`interproc.shm.Subscriber`.

    ``await Subscriber.open(name)``; ``await sub.recv()`` -> ``Sample``;
    ``await sub.recv_bytes()``; ``async for data in sub``.
    """

    def __init__(self, sub: _Subscriber) -> None:
        self.subscriber = sub
        self.name = sub.name
        self._core = sub.core
        self._fdw = FdWaiters(self._core.drain_bell)

    @classmethod
    async def open(cls, name: str, *, policy: str = "block", timeout: float | None = None,
                   scope: Scope = "user", spin: float = DEFAULT_SPIN) -> "Subscriber":
        """Subscribe; waiting for the publisher to appear runs in the default executor."""
        loop = asyncio.get_running_loop()
        sub = await loop.run_in_executor(
            None, lambda: _Subscriber.open(name, policy=policy, timeout=timeout, scope=scope, spin=spin))
        return cls(sub)

    async def recv(self, *, timeout: float | None = None) -> Sample:
        """The next sample; ``Timeout``; ``ChannelClosed`` once the publisher is
        gone and everything it published was received."""
        core = self._core
        deadline = _deadline(timeout)
        while True:
            try:
                return core.recv(timeout=0)
            except Timeout:
                pass
            await self._wait(deadline)

    async def recv_bytes(self, *, timeout: float | None = None) -> bytes:
        with await self.recv(timeout=timeout) as s:
            return s.tobytes()

    async def _wait(self, deadline: float | None) -> None:
        loop = asyncio.get_running_loop()
        if deadline is not None and loop.time() >= deadline:
            raise Timeout(f"no sample from publisher {self.name!r} in time")
        core = self._core
        try:
            if core.arm() or self.subscriber.publisher_gone():
                return  # ready after all: recv reports it
            await self._fdw.wait(core.bell_fd, deadline)
        finally:
            core.disarm()  # harmless once closed

    @property
    def received(self) -> int:
        return self.subscriber.received

    @property
    def dropped(self) -> int:
        return self.subscriber.dropped

    @property
    def closed(self) -> bool:
        return self.subscriber.closed

    def close(self) -> None:
        self._fdw.unwatch()
        self._fdw.wake_all()
        self.subscriber.close()  # closes the core's doorbell too

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> "Subscriber":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        while True:
            try:
                yield await self.recv_bytes()
            except ChannelClosed:
                return


class Publisher:
    """``async`` twin of :class:`interproc.shm.Publisher`: ``await pub.send(data)``
    waits on the event loop while a *block* subscriber still holds the slot."""

    def __init__(self, pub: _Publisher) -> None:
        self.publisher = pub
        self.name = pub.name
        self._core = pub.core
        self._fdw = FdWaiters(self._core.drain_bell)

    @classmethod
    def create(cls, name: str, slot_size: int, slots: int, *, history: int = 0,
               max_subscribers: int = DEFAULT_MAX_SUBSCRIBERS, scope: Scope = "user",
               mode: int | None = None, spin: float = DEFAULT_SPIN) -> "Publisher":
        """Create the publisher (nothing to wait for: a plain call)."""
        return cls(_Publisher.create(name, slot_size, slots, history=history,
                                     max_subscribers=max_subscribers, scope=scope, mode=mode, spin=spin))

    async def send(self, data: Any, *, timeout: float | None = None) -> None:
        """Publish a copy of ``data``; ``Timeout`` if a subscriber holds the slot too long."""
        core = self._core
        deadline = _deadline(timeout)
        while True:
            try:
                return core.send(data, timeout=0)
            except Timeout:
                pass
            await self._wait(deadline)

    async def _wait(self, deadline: float | None) -> None:
        loop = asyncio.get_running_loop()
        if deadline is not None and loop.time() >= deadline:
            raise Timeout(f"publisher {self.name!r}: a subscriber has not released its samples")
        core = self._core
        try:
            if core.arm():
                return
            # A slice: subscribers that die holding slots are reaped by the
            # next send(timeout=0), which the blocking path does every slice too.
            await self._fdw.wait(core.bell_fd, deadline, SLICE)
        finally:
            core.disarm()

    @property
    def published(self) -> int:
        return self.publisher.published

    @property
    def subscribers(self) -> int:
        return self.publisher.subscribers

    @property
    def closed(self) -> bool:
        return self.publisher.closed

    def close(self) -> None:
        """Stop publishing: subscribers get what is queued, then ``ChannelClosed``."""
        self._fdw.unwatch()
        self._fdw.wake_all()
        self.publisher.close()  # closes the core's doorbell too

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> "Publisher":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
