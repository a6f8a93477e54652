"""asyncio face of the ``shm://`` channel.

Shared memory has no file descriptor to put in the event loop, so a wait is
handed to a small thread pool whose thread blocks in the C wait of
``_native.ShmChannel`` (spin, then futex sleep, GIL released) and resolves the
asyncio future through ``call_soon_threadsafe`` (what ``run_in_executor``
does).  Nothing polls: when no message comes, the thread sleeps in the kernel.
A cancelled wait is woken at once with ``interrupt()``.

Messages that are already there never touch the pool: ``recv`` first checks
the ring without blocking.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator, Callable

from .. import _shmchannel
from .._address import Address, parse
from .._errors import ChannelClosed, Timeout
from .._timeout import check_timeout


class ShmChannel:
    """``async`` twin of :class:`interproc._shmchannel.ShmChannel`."""

    def __init__(self, channel: _shmchannel.ShmChannel) -> None:
        self.channel = channel
        self._core = channel._core
        # Two workers: one task may wait to send while another waits to receive.
        self._pool: ThreadPoolExecutor | None = None

    # -- waiting ----------------------------------------------------------
    async def _wait(self, fn: Callable[..., bool], *args: Any, deadline: float | None, what: str) -> None:
        loop = asyncio.get_running_loop()
        left = None
        if deadline is not None:
            left = deadline - loop.time()
            if left <= 0:
                raise Timeout(f"shm channel: {what} timed out")
        if self._pool is None:
            self._pool = ThreadPoolExecutor(2, thread_name_prefix="interproc-shm-wait")
        fut = loop.run_in_executor(self._pool, functools.partial(fn, *args, timeout=left))
        try:
            await fut
        except asyncio.CancelledError:
            self._core.interrupt()  # the worker thread returns at once
            raise

    @staticmethod
    def _deadline(timeout: float | None) -> float | None:
        if check_timeout(timeout) is None:
            return None
        return asyncio.get_running_loop().time() + timeout

    # -- the channel ------------------------------------------------------
    async def send(self, data: Any, *, timeout: float | None = None) -> None:
        core = self._core
        n = memoryview(data).nbytes
        deadline = self._deadline(timeout)
        while not core.wait_send(n, timeout=0):
            await self._wait(core.wait_send, n, deadline=deadline, what="send")
        core.send(data, timeout=0)

    async def recv(self, *, timeout: float | None = None) -> bytes:
        return await self._recv(self._core.recv, timeout)

    async def recv_into(self, buffer: Any, *, timeout: float | None = None) -> int:
        return await self._recv(functools.partial(self._core.recv_into, buffer), timeout)

    async def recv_view(self, *, timeout: float | None = None) -> memoryview:
        return await self._recv(self._core.recv_view, timeout)

    async def _recv(self, take: Callable[..., Any], timeout: float | None) -> Any:
        core = self._core
        deadline = self._deadline(timeout)
        while not core.wait_recv(timeout=0):
            await self._wait(core.wait_recv, deadline=deadline, what="recv")
        return take(timeout=0)

    async def send_obj(self, obj: Any, *, timeout: float | None = None) -> None:
        await self.send(self.channel.codec.encode(obj), timeout=timeout)

    async def recv_obj(self, *, timeout: float | None = None) -> Any:
        return self.channel.codec.decode(await self.recv(timeout=timeout))

    @property
    def closed(self) -> bool:
        return self.channel.closed

    def close(self) -> None:
        self._core.interrupt()
        self.channel.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> "ShmChannel":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        while True:
            try:
                yield await self.recv()
            except ChannelClosed:
                return

    def __getattr__(self, name: str) -> Any:
        # capacity, max_message, policy, name, address, codec ...
        return getattr(self.channel, name)


class ShmListener:
    """``async`` twin of :class:`interproc._shmchannel.ShmListener`."""

    def __init__(self, listener: _shmchannel.ShmListener) -> None:
        self.listener = listener
        self.address = listener.address

    async def accept(self, *, timeout: float | None = None) -> ShmChannel:
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(None, functools.partial(self.listener.accept, timeout=timeout,
                                                          _cancellable=True))
        try:
            return ShmChannel(await fut)
        except asyncio.CancelledError:
            self.listener._interrupt()
            raise

    def close(self) -> None:
        self.listener.close()

    async def __aenter__(self) -> "ShmListener":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


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
