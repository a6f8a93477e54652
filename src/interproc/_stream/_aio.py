"""asyncio channels over byte streams, on the same sans-I/O framing core.

:class:`StreamProtocol` is an ``asyncio.BufferedProtocol``: the event loop
reads straight into :class:`~interproc._framing.FrameDecoder`'s buffer, and
``recv()`` waits on a future that the protocol completes when a frame (or the
end of the stream) arrives.  No polling anywhere; flow control in both
directions (``pause_reading`` when unread frames pile up, ``pause_writing``
awaited by ``send``).
"""

from __future__ import annotations

import asyncio
import socket
import ssl as _ssl
from typing import Any

from .. import _contract
from .._codec import Codec, get_codec
from .._deadline import deadline_of, now as _now
from .._errors import ChannelClosed, HandleClosed, PermissionDenied, ProtocolError, Timeout
from .._framing import DEFAULT_MAX_MESSAGE, HEADER, FrameDecoder, encode
from .._handshake import MAX_HANDSHAKE_FRAME

_HIGH_FRAMES = 256  # stop reading from the OS when this many frames wait unread
_LOW_FRAMES = 32
# ... or when whole frames waiting unread hold this many bytes: a peer that
# sends faster than the application reads is held back by the kernel's
# buffers (TCP/AF_UNIX flow control), not by our memory.  Never while no
# whole frame waits: a message bigger than this must still come in.
_HIGH_BYTES = 4 * 1024 * 1024
_LOW_BYTES = 1024 * 1024


class StreamProtocol(asyncio.BufferedProtocol):
    def __init__(self) -> None:
        self.decoder = FrameDecoder()
        self.decoder.hold(MAX_HANDSHAKE_FRAME)
        self.framed = True
        self.raw = bytearray()  # byte mode: what arrived and was not read yet
        self._scratch = bytearray(256 * 1024)
        self.transport: asyncio.BaseTransport | None = None
        self.eof = False
        self.lost: Exception | None = None
        self._waiter: asyncio.Future | None = None
        self._paused_reading = False
        self._write_ready: asyncio.Future | None = None
        self._held = 0  # bytes received and not yet taken by recv() (whole frames and the partial one)

    # -- asyncio callbacks --------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.decoder.get_buffer(sizehint) if self.framed else memoryview(self._scratch)

    def buffer_updated(self, nbytes: int) -> None:
        if self.framed:
            self.decoder.buffer_updated(nbytes)
            self._held += nbytes
            pending = self.decoder.pending
            if pending and (pending >= _HIGH_FRAMES or self._held >= _HIGH_BYTES) and not self._paused_reading:
                self._pause_reading(True)
        else:
            self.raw += self._scratch[:nbytes]
        self._wake()

    def data_received(self, data: bytes) -> None:  # pipe transports hand over bytes
        if self.framed:
            self.decoder.feed(data)
            self._held += len(data)
            pending = self.decoder.pending
            if pending and (pending >= _HIGH_FRAMES or self._held >= _HIGH_BYTES) and not self._paused_reading:
                self._pause_reading(True)
        else:
            self.raw += data
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.lost = exc or ChannelClosed("the connection is closed")
        self._wake()
        if self._write_ready is not None and not self._write_ready.done():
            self._write_ready.set_result(None)

    def pause_writing(self) -> None:
        if self._write_ready is None or self._write_ready.done():
            self._write_ready = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._write_ready is not None and not self._write_ready.done():
            self._write_ready.set_result(None)

    # -- helpers for the channel ---------------------------------------------
    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _pause_reading(self, pause: bool) -> None:
        self._paused_reading = pause
        try:
            (self.transport.pause_reading if pause else self.transport.resume_reading)()  # type: ignore[union-attr]
        except (AttributeError, RuntimeError):
            pass

    async def wait_data(self, deadline: float | None, what: str) -> None:
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        try:
            if deadline is None:
                await self._waiter
            else:
                left = deadline - _now()
                if left <= 0:
                    raise Timeout(f"{what} timed out")
                try:
                    await asyncio.wait_for(self._waiter, left)
                except asyncio.TimeoutError:
                    raise Timeout(f"{what} timed out") from None
        finally:
            self._waiter = None

    def next_frame(self) -> bytes | None:
        frame = self.decoder.next_frame()
        if frame is not None:
            self._held = max(0, self._held - len(frame) - HEADER.size)
        if self._paused_reading:
            pending = self.decoder.pending
            if not pending or (pending <= _LOW_FRAMES and self._held <= _LOW_BYTES):
                self._pause_reading(False)
        return frame

    async def drained(self) -> None:
        if self._write_ready is not None:
            await self._write_ready


class AsyncStreamEnd:
    """What both halves of an asyncio byte-stream channel share (transport,
    protocol, codec, close).  :class:`AsyncStreamChannel` is duplex; an
    anonymous pipe end is :class:`AsyncStreamReceiver` or
    :class:`AsyncStreamSender` alone.

    Byte-mode channels (``framed=False``) also have ``await read(n)`` and
    ``await write(b)``.  ``trusted`` gates pickle exactly as on sync channels.
    """

    trusted: bool = True
    codec: Codec
    peer_credentials: Any = None
    authenticated: bool = False
    mode: str = "message"

    def __init__(self, transport: asyncio.BaseTransport, protocol: StreamProtocol, *, name: str,
                 framed: bool = True, codec: Any = "json", max_message_size: int = DEFAULT_MAX_MESSAGE,
                 trusted: bool = True, write_transport: asyncio.BaseTransport | None = None,
                 on_close: Any = None) -> None:
        self.name = name
        self.trusted = trusted
        self.framed = framed
        self.max_message_size = max_message_size
        self._transport = transport
        self._wtransport = write_transport or transport
        self._proto = protocol
        self._closed = False
        self._on_close = on_close
        protocol.decoder.release(max_message_size)
        if not framed:
            protocol.raw += protocol.decoder.take_raw()
            protocol.framed = False
        self.codec = get_codec(codec, trusted=trusted)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}{' closed' if self._closed else ''}>"

    @property
    def closed(self) -> bool:
        return self._closed

    def set_codec(self, codec: Any) -> None:
        self.codec = get_codec(codec, trusted=self.trusted)

    _broken: str | None = None

    def _handle_closed(self, what: str) -> Exception:
        if self._broken is not None:
            return ChannelClosed(f"{what} on {self.name}: the channel was closed after {self._broken}")
        return HandleClosed(f"{what} on {self.name}: this handle is closed (used after its close())")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for t in {self._transport, self._wtransport}:
            t.close()
        if self._on_close is not None:
            self._on_close()

    async def aclose(self) -> None:
        self.close()
        await asyncio.sleep(0)  # let the transport run its close callbacks


class AsyncStreamSender(_contract.AsyncSendChannel):
    """Sending on an asyncio byte stream (mixed with :class:`AsyncStreamEnd`)."""

    async def send(self, data: Any, *, timeout: float | None = None) -> None:
        """Send one message (any bytes-like object); waits while the OS buffer is full."""
        if self._closed:
            raise self._handle_closed("send")
        if self._proto.lost is not None:
            raise ChannelClosed(f"{self.name}: the peer has gone")
        if self.framed:
            self._wtransport.writelines(encode(data, self.max_message_size))  # type: ignore[attr-defined]
        else:
            self._wtransport.write(memoryview(data).cast("B"))  # type: ignore[attr-defined]
        await self._drain(timeout)

    async def _drain(self, timeout: float | None) -> None:
        try:
            await asyncio.wait_for(self._proto.drained(), timeout)
        except asyncio.TimeoutError:
            raise Timeout(f"send on {self.name} timed out (the peer is not reading)") from None
        if self._proto.lost is not None and not isinstance(self._proto.lost, ChannelClosed):
            raise ChannelClosed(f"{self.name}: the peer has gone ({self._proto.lost})")

    async def write(self, data: Any, *, timeout: float | None = None) -> int:
        view = memoryview(data).cast("B")
        if self._closed:
            raise self._handle_closed("write")
        self._wtransport.write(view)  # type: ignore[attr-defined]
        await self._drain(timeout)
        return view.nbytes


class AsyncStreamReceiver(_contract.AsyncReceiveChannel):
    """Receiving on an asyncio byte stream (mixed with :class:`AsyncStreamEnd`)."""

    def ready(self) -> bool:
        """True when a message is already buffered (``recv()`` will not wait)."""
        return bool(self._proto.decoder.pending) if self.framed else bool(self._proto.raw)

    async def recv(self, *, timeout: float | None = None) -> bytes:
        """The next whole message; ``ChannelClosed`` once the peer has gone."""
        if self._closed:
            raise self._handle_closed("recv")
        if not self.framed:
            data = await self.read(-1, timeout=timeout)
            if not data:
                raise ChannelClosed(f"{self.name}: the peer closed the stream")
            return data
        deadline = deadline_of(timeout)
        proto = self._proto
        while True:
            try:
                frame = proto.next_frame()
                if frame is not None:
                    return frame
                if proto.eof:
                    proto.decoder.eof()
                    raise ChannelClosed(f"{self.name}: the peer closed the channel")
            except ProtocolError as exc:
                self._broken = f"a protocol error ({exc})"
                self.close()
                raise
            await proto.wait_data(deadline, f"recv on {self.name}")

    async def read(self, n: int = -1, *, timeout: float | None = None) -> bytes:
        """Byte mode: up to ``n`` bytes (``b""`` at end of stream)."""
        if self._closed:
            raise self._handle_closed("read")
        proto = self._proto
        deadline = deadline_of(timeout)
        while not proto.raw and not proto.eof:
            await proto.wait_data(deadline, f"read on {self.name}")
        n = len(proto.raw) if n < 0 else n
        data = bytes(proto.raw[:n])
        del proto.raw[:n]
        return data


class AsyncStreamChannel(AsyncStreamEnd, AsyncStreamSender, AsyncStreamReceiver, _contract.AsyncChannel):
    """The asyncio channel over a byte stream: ``await send()``, ``await recv()``,
    ``async for``, ``close()``."""


AsyncChannel = AsyncStreamChannel  # the old private name, used by other modules


async def read_frame(proto: StreamProtocol, deadline: float | None, what: str) -> bytes:
    """One handshake frame from a fresh connection."""
    while True:
        frame = proto.next_frame()
        if frame is not None:
            return frame
        if proto.eof:
            proto.decoder.eof()
            raise ChannelClosed(f"{what}: the peer closed the connection during the handshake")
        await proto.wait_data(deadline, what)


async def client_handshake(transport: Any, proto: StreamProtocol, hs: Any, deadline: float | None, what: str) -> None:
    while not hs.done:
        reply = hs.receive(await read_frame(proto, deadline, what))
        if reply is not None:
            transport.writelines(encode(reply))


async def server_handshake(transport: Any, proto: StreamProtocol, hs: Any, deadline: float | None, what: str) -> None:
    transport.writelines(encode(hs.greeting()))
    while not hs.done:
        frame = await read_frame(proto, deadline, what)
        try:
            reply = hs.receive(frame)
        except Exception:
            verdict = getattr(hs, "reply", None)
            if verdict is not None:
                transport.writelines(encode(verdict))
            raise
        if reply is not None:
            transport.writelines(encode(reply))


async def open_stream(sock: socket.socket, *, ssl: Any = None, server_side: bool = False,
                      server_hostname: str | None = None,
                      deadline: float | None = None) -> tuple[asyncio.Transport, StreamProtocol]:
    """Put a connected socket on the loop (inside TLS when ``ssl`` is given):
    ``(transport, protocol)``, ready for the handshake."""
    loop = asyncio.get_running_loop()
    kw: dict[str, Any] = {}
    if ssl is not None:
        kw["ssl"] = ssl
        kw["ssl_handshake_timeout"] = 60.0 if deadline is None else max(0.001, deadline - _now())
        if not server_side:
            kw["server_hostname"] = server_hostname
    try:
        if server_side:
            coro = loop.connect_accepted_socket(StreamProtocol, sock, **kw)
        else:
            coro = loop.create_connection(StreamProtocol, sock=sock, **kw)
        transport, proto = await asyncio.wait_for(coro, None if deadline is None else max(0.001, deadline - _now()))
    except asyncio.TimeoutError:
        sock.close()
        raise Timeout("connection setup timed out") from None
    except _ssl.SSLError as exc:
        sock.close()
        raise PermissionDenied(f"TLS handshake failed: {exc}") from exc
    except BaseException:
        sock.close()
        raise
    return transport, proto  # type: ignore[return-value]
