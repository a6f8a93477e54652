"""asyncio mailslots: ``await slot.read()`` and ``await Mailslot.write(...)``.

The queue lives in shared memory and is signalled by futex words, which an
event loop cannot watch: a wait goes through the one asyncio waiter for
futex-based objects, :func:`interproc._aio_futex.futex_wait` (a waiter thread
asleep in ``futex_wait``, woken with a spurious futex wake on cancel).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

from .. import _mailslot as _sync
from .._codec import get_codec
from .._contract import AsyncReceiveChannel, AsyncSendChannel
from .._deadline import time_left as _left
from .._errors import ChannelClosed, HandleClosed, NotFound, Timeout
from . import Pending, as_view, open_queue, writers
from ._queue import LIVENESS_SLICE, Gone, Queue, deadline_of
from .._naming import validate_name
from .._deadline import appear_delay
from .._aio_futex import futex_wait

# A lock wait this short never blocks the event loop noticeably; the mutex is
# only held for the copy of one message.
_LOCK_WAIT = 0.05


async def _sleep_on(wait: Callable[[float | None], None], wake: Callable[[], None], timeout: float | None) -> None:
    """Run ``wait(timeout)`` (a futex sleep) in the common waiter; ``wake()`` frees it on cancel."""
    await futex_wait(lambda _cancel: wait(timeout), wake, name="interproc-aio-mailslot")


class Mailslot(AsyncReceiveChannel):
    """asyncio face of :class:`interproc.mailslot.Mailslot` (same arguments);
    an :class:`~interproc.aio.AsyncReceiveChannel` whose ``recv()`` is ``read()``."""

    codec = get_codec("json")

    def __init__(self, slot: _sync.Mailslot) -> None:
        self._slot = slot

    @classmethod
    def create(cls, name: str, *args: Any, **kwargs: Any) -> "Mailslot":
        """Create the server (does not block; see ``interproc.mailslot.Mailslot.create``)."""
        return cls(_sync.Mailslot.create(name, *args, **kwargs))

    @property
    def sync(self) -> _sync.Mailslot:
        """The underlying blocking Mailslot (statistics, ``pending()``...)."""
        return self._slot

    def __getattr__(self, attr: str) -> Any:
        if attr in ("name", "scope", "path", "max_message_size", "max_messages", "dropped", "rejected", "domain_address"):
            return getattr(self._slot, attr)
        raise AttributeError(attr)

    @property
    def closed(self) -> bool:
        return self._slot.closed

    def pending(self) -> Pending:
        return self._slot.pending()

    async def recv(self, *, timeout: float | None = None) -> bytes:
        """The contract's name for :meth:`read`."""
        return await self.read(timeout=timeout)

    async def read(self, *, timeout: float | None = None) -> bytes:
        """The oldest message; waits (without blocking the loop) up to ``timeout`` seconds."""
        if hasattr(self._slot, "_aread"):  # a nats:// mailslot: its subscription wakes this loop
            return await self._slot._aread(timeout)
        deadline = deadline_of(timeout)
        queue: Queue = self._slot.queue
        while True:
            if self._slot.closed:
                raise HandleClosed(f"mailslot {self._slot.name!r} was used after its close()")
            seq = queue.data_seq()  # before looking: a write after this wakes the wait at once
            data = self._slot.try_read()
            if data is not None:
                return data
            left = _left(deadline)
            if left == 0:
                raise Timeout(f"mailslot {self._slot.name!r}: no message arrived within the timeout")
            await _sleep_on(lambda t: queue.wait_data(seq, t), queue.wake_reader, left)

    def __aiter__(self):
        return self

    async def __anext__(self) -> bytes:
        if self._slot.closed:
            raise StopAsyncIteration
        return await self.read()

    def close(self) -> None:
        self._slot.close()

    @staticmethod
    async def write(name: str, data: Any, *, timeout: float | None = None, scope: str = "user", **kwargs: Any) -> None:
        """Like ``Mailslot.write``; while the server's queue is full the wait happens
        in a waiter thread, not on the event loop."""
        if scope.lower().startswith(("nats://", "tls://")):  # the first write connects: not on the loop
            await asyncio.to_thread(_sync.Mailslot.write, name, data, scope=scope, timeout=timeout, **kwargs)
            return
        if scope == "domain":  # one sendto(): never blocks
            _sync.Mailslot.write(name, data, scope=scope, **kwargs)
            return
        if kwargs:
            raise TypeError(f"unexpected options for a local mailslot write: {sorted(kwargs)}")
        validate_name(name)
        deadline = deadline_of(timeout)
        for _attempt in range(2):
            queue = writers.get(name, scope)
            try:
                await _put(queue, as_view(data), deadline)
                return
            except Gone:
                writers.drop(name, scope)
        raise NotFound(f"mailslot {name!r}: its server has closed or died")

    @staticmethod
    async def open(name: str, *, scope: str = "user", timeout: float | None = None) -> "MailslotWriter":
        """A write-only async channel to the server of ``name``."""
        validate_name(name)
        if scope.lower().startswith(("nats://", "tls://")):  # connecting may take a while: not on the loop
            return _NatsWriter(await asyncio.to_thread(_sync.Mailslot.open, name, scope=scope, timeout=timeout))
        deadline = deadline_of(timeout)
        while True:
            try:
                return MailslotWriter(open_queue(name, scope), name)
            except NotFound:
                if deadline is None:
                    raise
                await asyncio.sleep(appear_delay(deadline, timeout, f"mailslot {name!r}"))


async def _put(queue: Queue, view: memoryview, deadline: float | None) -> None:
    while True:
        seq = queue.space_seq()
        if queue.put(view, time.monotonic() + _LOCK_WAIT, wait=False):
            return
        if not queue.owner_alive():
            raise Gone("died")
        left = _left(deadline)
        if left == 0:
            raise Timeout(f"{queue.what}: the queue stayed full for the whole timeout")
        # Sleep in slices so a reader that died (and will never read) is noticed.
        slice_ = LIVENESS_SLICE if left is None else min(left, LIVENESS_SLICE)
        await _sleep_on(lambda t: queue.wait_space(seq, t), queue.wake_writers, slice_)


class MailslotWriter(AsyncSendChannel):
    """Write-only async channel (``send``/``send_obj``): an
    :class:`~interproc.aio.AsyncSendChannel`, with no ``recv``."""

    codec = get_codec("json")

    def __init__(self, queue: Queue, name: str) -> None:
        self._queue = queue
        self.name = name
        self._closed = False

    async def send(self, data: Any, *, timeout: float | None = None) -> None:
        if self._closed:
            raise HandleClosed(f"send on mailslot writer {self.name!r} after its close()")
        try:
            await _put(self._queue, as_view(data), deadline_of(timeout))
        except Gone:
            raise ChannelClosed(f"mailslot {self.name!r}: its server has closed or died") from None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.close()


async def connect_address(addr: Any, *, timeout: float | None = None, **kw: Any) -> MailslotWriter:
    """``await interproc.aio.connect("mailslot://NAME")``: a write-only async channel."""
    if kw:
        raise TypeError(f"mailslot:// addresses take no options {sorted(kw)}")
    return await Mailslot.open(addr.name, scope=addr.query.get("scope", "user"), timeout=timeout)


class _NatsWriter(MailslotWriter):
    """``interproc.aio.Mailslot.open(name, scope="nats://...")``: sends hand the bytes to the
    NATS loop thread at once; only while this process has too much queued does a send wait,
    and then in a worker thread."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer
        self.name = writer.name
        self._closed = False

    async def send(self, data: Any, *, timeout: float | None = None) -> None:
        if self._closed:
            raise HandleClosed(f"send on mailslot writer {self.name!r} after its close()")
        try:
            self._writer.send(data, timeout=0)
        except Timeout:
            await asyncio.to_thread(self._writer.send, data, timeout=timeout)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._writer.close()

