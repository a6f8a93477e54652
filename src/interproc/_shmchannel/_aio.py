"""asyncio face of the ``shm://`` channel.

A wait that cannot be satisfied at once goes on the event loop itself: the
channel's doorbell descriptor (``fileno()``, a pipe the peer writes to only
while we are armed, plus the peer's pidfd, in one epoll set) is watched with
``loop.add_reader``, so one loop serves any number of shm:// channels beside
sockets with no thread per channel.  A waiter arms (``arm_recv`` /
``arm_send``: announce, fence, re-check the ring) and awaits; the reader
callback drains the doorbell and wakes every waiter of the channel, which
re-check and re-arm.  Draining happens before the re-check, so no wake-up is
lost, and nothing polls: with no message the loop sleeps in the kernel.

Messages that are already there never touch the loop's selector: ``recv``
first checks the ring without blocking.  ``accept`` waits the same way on
the listener's doorbell (``ShmListener.fileno``); only ``connect`` (which
may wait for a listener to appear) runs in the default executor.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Callable

from .. import _contract
from . import _channel as _shmchannel
from .._address import Address, parse
from .._deadline import check_timeout
from .._errors import HandleClosed, Timeout
from .._aio_fdwait import FdWaiters


class ShmChannel(_contract.AsyncChannel):
    """``async`` twin of :class:`interproc.shmchannel.ShmChannel`."""

    def __init__(self, channel: _shmchannel.ShmChannel) -> None:
        self.channel = channel
        self._core = channel.core
        self._fd: int | None = None
        self._fdw = FdWaiters(self._core.drain_bell)

    # -- waiting ----------------------------------------------------------
    async def _wait(self, arm: Callable[..., bool], *args: Any, deadline: float | None, what: str) -> None:
        """Sleep until the doorbell rings or the deadline passes (the caller re-checks)."""
        loop = asyncio.get_running_loop()
        if deadline is not None and loop.time() >= deadline:
            raise Timeout(f"shm channel: {what} timed out")
        if self._fd is None:
            self._fd = self._core.fileno()  # once: later calls would drain other waiters' rings
        if arm(*args):
            return  # ready after all
        await self._fdw.wait(self._fd, deadline)

    @staticmethod
    def _deadline(timeout: float | None) -> float | None:
        if check_timeout(timeout) is None:
            return None
        return asyncio.get_running_loop().time() + timeout

    # -- the channel ------------------------------------------------------
    def _check_open(self, what: str) -> None:
        if self.channel.closed:
            raise HandleClosed(f"{what} on {self.channel.address} after its close()")

    async def send(self, data: Any, *, timeout: float | None = None) -> None:
        self._check_open("send")
        core = self._core
        n = memoryview(data).nbytes
        deadline = self._deadline(timeout)
        while not core.wait_send(n, timeout=0):
            await self._wait(core.arm_send, n, deadline=deadline, what="send")
        core.send(data, timeout=0)

    async def recv(self, *, timeout: float | None = None) -> bytes:
        return await self._recv(self._core.recv, timeout)

    async def recv_into(self, buffer: Any, *, timeout: float | None = None) -> int:
        return await self._recv(functools.partial(self._core.recv_into, buffer), timeout)

    async def recv_view(self, *, timeout: float | None = None) -> memoryview:
        return await self._recv(self._core.recv_view, timeout)

    async def _recv(self, take: Callable[..., Any], timeout: float | None) -> Any:
        self._check_open("recv")
        core = self._core
        deadline = self._deadline(timeout)
        while not core.wait_recv(timeout=0):
            await self._wait(core.arm_recv, deadline=deadline, what="recv")
        return take(timeout=0)

    @property
    def closed(self) -> bool:
        return self.channel.closed

    def close(self) -> None:
        self._fdw.unwatch()  # before the descriptor goes with the channel
        self._fdw.wake_all()  # they re-check and find the channel closed
        self.channel.close()

    def __getattr__(self, name: str) -> Any:
        # capacity, max_message, policy, name, address, codec ...
        return getattr(self.channel, name)


class ShmListener(_contract.AsyncListener):
    """``async`` twin of :class:`interproc.shmchannel.ShmListener`."""

    def __init__(self, listener: _shmchannel.ShmListener) -> None:
        self.listener = listener
        self.address = listener.address
        self._fdw = FdWaiters(lambda: None)  # fileno() itself drains and re-arms

    async def accept(self, *, timeout: float | None = None) -> ShmChannel:
        """Wait on the loop (the listener's doorbell fd) for a connection."""
        loop = asyncio.get_running_loop()
        deadline = ShmChannel._deadline(timeout)
        while True:
            try:
                return ShmChannel(self.listener.accept(timeout=0))
            except Timeout:
                pass
            fd = self.listener.fileno()  # drains and arms; readable at once if one is queued
            if deadline is not None and loop.time() >= deadline:
                raise Timeout(f"{self.address}: no connection within {timeout} s")
            await self._fdw.wait(fd, deadline)

    @property
    def closed(self) -> bool:
        return self.listener.closed

    def close(self) -> None:
        self._fdw.unwatch()
        self._fdw.wake_all()
        self.listener.close()


async def connect_address(addr: Address | str, *, timeout: float | None = None, **kw: Any) -> ShmChannel:
    """Connect to ``shm://NAME`` (the waiting for a listener runs in a thread)."""
    addr = parse(addr) if isinstance(addr, str) else addr
    loop = asyncio.get_running_loop()
    ch = await loop.run_in_executor(
        None, functools.partial(_shmchannel.connect_address, addr, timeout=timeout, **kw))
    return ShmChannel(ch)


async def listen_address(addr: Address | str, **kw: Any) -> ShmListener:
    addr = parse(addr) if isinstance(addr, str) else addr
    return ShmListener(_shmchannel.listen_address(addr, **kw))


connect = connect_address
listen = listen_address
