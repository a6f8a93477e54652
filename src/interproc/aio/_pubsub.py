"""asyncio face of shared-memory publish/subscribe (``interproc.shm.Publisher``
and ``Subscriber``).

The data path is the blocking objects' C core, called without blocking
(``timeout=0``); only the waiting differs.  A waiting side gets a doorbell:
a pipe whose fd number and inode it publishes in the segment (a subscriber
in its table entry, the publisher in the header), put in an epoll set with
the other side's pidfd where there is one, and watched with
``loop.add_reader``, so one event loop serves any number of them with no
thread each.  To wait it *arms*: sets the doorbell's one-shot ``fdwait``
word, counts itself as a sleeper (the counters the other side already
checks after every publish/release, so the hot path does not change), runs
the sleeper's fence and re-checks.  The other side, seeing a sleeper, clears
``fdwait`` and writes a byte to the pipe (src/native/pubsub_core.c).  The
reader callback drains the pipe before the waiter re-checks, so no wake-up
is lost.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, AsyncIterator

from .._errors import ChannelClosed, Timeout
from .._aio_fdwait import FdWaiters
from .._naming import Scope
from .._platform import ProcessId, is_alive
from .._pubsub import Publisher as _Publisher, Sample, Subscriber as _Subscriber
from .._pubsub._layout import (
    DEFAULT_MAX_SUBSCRIBERS, DEFAULT_SPIN, E_BELL, OFF_CLOSED, OFF_PUB_BELL, OFF_PUB_WAITING,
    OFF_PUBLISHED, OFF_SUB_WAITERS, SLICE, _U32, _add, _heavy_fence, _load, _store,
)


class _Doorbell:
    """A pipe published at ``off`` in the segment, plus a pidfd, in one epoll set."""

    def __init__(self, buf: memoryview, off: int, watch: ProcessId | None) -> None:
        import select

        self._buf, self._off = buf, off
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._ep = select.epoll()
        self._ep.register(self._r, select.EPOLLIN)
        self._pidfd = -1
        if watch is not None:
            try:
                self._pidfd = os.pidfd_open(watch.pid)
                self._ep.register(self._pidfd, select.EPOLLIN)
            except OSError:
                pass  # gone already (the re-check reports it) or no pidfds
        _store(buf, off, self._r, **_U32)
        _store(buf, off + 8, os.fstat(self._r).st_ino)  # last: readers check it first
        self.fd = self._ep.fileno()

    def arm(self) -> None:
        _store(self._buf, self._off + 4, 1, **_U32)

    def drain(self) -> None:
        try:
            while os.read(self._r, 256):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        try:
            _store(self._buf, self._off + 8, 0)
        except ValueError:
            pass  # the segment is gone already
        self._ep.close()
        for fd in (self._r, self._w, self._pidfd):
            if fd >= 0:
                os.close(fd)


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
        self._core = sub._core
        self._bell: _Doorbell | None = None
        self._fdw = FdWaiters(lambda: self._bell and self._bell.drain())

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
        sub = self.subscriber
        buf = sub._buf
        if self._bell is None:
            self._bell = _Doorbell(buf, sub._entry + E_BELL, sub._pub)
        bell = self._bell
        bell.arm()
        _add(buf, OFF_SUB_WAITERS, 1)  # the publisher looks at doorbells only when someone sleeps
        try:
            _heavy_fence()
            if (_load(buf, OFF_PUBLISHED) > self._core.seq or _load(buf, OFF_CLOSED, **_U32)
                    or not is_alive(sub._pub)):
                return  # ready after all: recv reports it
            await self._fdw.wait(bell.fd, deadline)
        finally:
            if not sub.closed:  # closed meanwhile: the segment may be unmapped
                _add(buf, OFF_SUB_WAITERS, -1)

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
        if self._bell is not None and not self.subscriber.closed:
            self._bell.close()
            self._bell = None
        self.subscriber.close()

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
        self._core = pub._core
        self._bell: _Doorbell | None = None
        self._fdw = FdWaiters(lambda: self._bell and self._bell.drain())

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
        pub = self.publisher
        buf = pub._buf
        if self._bell is None:
            self._bell = _Doorbell(buf, OFF_PUB_BELL, None)
        bell = self._bell
        bell.arm()
        _add(buf, OFF_PUB_WAITING, 1)  # subscribers look at the doorbell only when we wait
        try:
            _heavy_fence()
            if self._core.has_room(self._core.seq):
                return
            # A slice: subscribers that die holding slots are reaped by the
            # next send(timeout=0), which the blocking path does every slice too.
            await self._fdw.wait(bell.fd, deadline, SLICE)
        finally:
            if not pub.closed:  # closed meanwhile: the segment may be unmapped
                _add(buf, OFF_PUB_WAITING, -1)

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
        if self._bell is not None and not self.publisher.closed:
            self._bell.close()
            self._bell = None
        self.publisher.close()

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> "Publisher":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
