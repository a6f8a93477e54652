"""asyncio version of the framed serial channel, on the same sans-I/O frame codec.

The port's non-blocking fd is watched with ``loop.add_reader`` /
``add_writer``: bytes go through :class:`~interproc._framing_cobs.FrameDecoder`
as they arrive, and ``recv()`` awaits a future completed by the reader
callback; nothing polls.  Reading stops while many frames wait unread (flow
control reaches the sender through the tty buffers).

    ch = await interproc._serial_aio.open_channel("/dev/ttyUSB0", 115200)
    await ch.send(b"hi"); await ch.recv(timeout=1)
    async for msg in ch: ...

``connect_address`` serves ``serial://`` for ``interproc.aio.connect``.
"""

from __future__ import annotations

import asyncio
import errno
import os
import time
from collections import deque
from typing import Any

from ._codec import Codec, get_codec
from ._errors import ChannelClosed, MessageTooLarge, NotFound, ProtocolError, Timeout
from ._framing_cobs import CLOSE, DATA, DEFAULT_MAX_PAYLOAD, FrameDecoder, encode_frame
from ._serial import _CHUNK, SerialPort, _byte_view
from ._serial import open as _open_port
from ._serial_channel import _QUERY_KEYS, _query_value
from ._timeout import nobody_came

_HIGH_FRAMES = 256  # stop reading when this many frames wait unread
_LOW_FRAMES = 32


class AsyncSerialChannel:
    """Messages over a serial line for asyncio; same frames and rules as ``SerialChannel``."""

    trusted = False  # the far end of a cable is not authenticated: no pickle

    def __init__(self, port: SerialPort, *, codec: str | Codec = "json", max_message_size: int = DEFAULT_MAX_PAYLOAD,
                 on_bad_frame: str = "drop", end_on_peer_close: bool = True) -> None:
        if on_bad_frame not in ("drop", "raise"):
            raise ValueError(f"on_bad_frame must be 'drop' or 'raise', not {on_bad_frame!r}")
        if isinstance(max_message_size, bool) or not isinstance(max_message_size, int) or max_message_size <= 0:
            raise ValueError(f"max_message_size must be a positive integer, not {max_message_size!r}")
        self.port = port
        self.codec = get_codec(codec, trusted=self.trusted)
        self.max_message_size = max_message_size
        self.on_bad_frame = on_bad_frame
        self.end_on_peer_close = bool(end_on_peer_close)
        self.peer_closes = 0
        self._decoder = FrameDecoder(max_message_size)
        self._frames: deque[bytes] = deque()
        self._bad_pending = 0  # drops not yet reported (on_bad_frame="raise")
        self._peer_closed = False
        self._error: Exception | None = None
        self._loop = asyncio.get_running_loop()
        self._waiter: asyncio.Future | None = None
        self._reading = False
        self._send_lock = asyncio.Lock()
        self._fd = port.fileno()
        self._start_reading()

    def __repr__(self) -> str:
        return f"<AsyncSerialChannel {self.port.port!r}{' closed' if self.closed else ''} dropped_frames={self.dropped_frames}>"

    @property
    def dropped_frames(self) -> int:
        return self._decoder.dropped

    @property
    def last_drop_reason(self) -> str | None:
        return self._decoder.last_error

    @property
    def closed(self) -> bool:
        return self.port.closed

    def set_codec(self, codec: str | Codec) -> None:
        self.codec = get_codec(codec, trusted=self.trusted)

    # -- reading ---------------------------------------------------------------
    def _start_reading(self) -> None:
        if not self._reading and self._error is None:
            self._loop.add_reader(self._fd, self._on_readable)
            self._reading = True

    def _stop_reading(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, _CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:
                self._error = OSError(exc.errno, f"serial port {self.port.port}: {exc.strerror}")
                self._stop_reading()
            data = b""
        if not data:  # readable yet empty: the pty or device hung up
            if self._error is None:
                self._error = ChannelClosed(f"serial port {self.port.port}: hung up (device gone or pty closed)")
            self._stop_reading()
        else:
            before = self._decoder.dropped
            for kind, payload in self._decoder.feed(data):
                if kind == DATA and not self._peer_closed:
                    self._frames.append(payload)
                elif kind == CLOSE:
                    self.peer_closes += 1
                    if self.end_on_peer_close:
                        self._peer_closed = True
            self._bad_pending += self._decoder.dropped - before
            if len(self._frames) >= _HIGH_FRAMES:
                self._stop_reading()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def recv(self, *, timeout: float | None = None) -> bytes:
        """One whole message; ``Timeout``, or ``ChannelClosed`` once the peer closed."""
        if self.closed:
            raise ChannelClosed("recv on a closed channel")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.on_bad_frame == "raise" and self._bad_pending:
                self._bad_pending = 0
                raise ProtocolError(f"serial port {self.port.port}: bad frame dropped ({self._decoder.last_error})")
            if self._frames:
                msg = self._frames.popleft()
                if len(self._frames) <= _LOW_FRAMES:
                    self._start_reading()
                return msg
            if self._peer_closed:
                raise ChannelClosed(f"serial port {self.port.port}: the peer closed the channel")
            if self._error is not None:
                raise self._error
            if self.closed:
                raise ChannelClosed(f"serial port {self.port.port}: closed")
            self._waiter = self._loop.create_future()
            try:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                await asyncio.wait_for(self._waiter, left)
            except asyncio.TimeoutError:
                raise Timeout(f"serial port {self.port.port}: recv timed out after {timeout}s") from None
            finally:
                self._waiter = None

    async def recv_obj(self, *, timeout: float | None = None) -> Any:
        return self.codec.decode(await self.recv(timeout=timeout))

    # -- writing ---------------------------------------------------------------
    async def send(self, data: Any, *, timeout: float | None = None) -> None:
        """Send one message.  A send cut short by its timeout may leave half a
        frame on the line; the peer drops and counts it, later frames are fine."""
        if self.closed:
            raise ChannelClosed("send on a closed channel")
        if self._peer_closed:
            raise ChannelClosed(f"serial port {self.port.port}: the peer closed the channel")
        view = _byte_view(data)
        if len(view) > self.max_message_size:
            raise MessageTooLarge(
                f"message of {len(view)} bytes is over max_message_size={self.max_message_size} on {self.port.port}"
            )
        frame = memoryview(encode_frame(view, DATA))
        try:
            await asyncio.wait_for(self._write_all(frame), timeout)
        except asyncio.TimeoutError:
            raise Timeout(f"serial port {self.port.port}: send timed out after {timeout}s") from None

    async def _write_all(self, frame: memoryview) -> None:
        async with self._send_lock:
            done = 0
            while done < len(frame):
                try:
                    done += os.write(self._fd, frame[done:])
                    continue
                except BlockingIOError:
                    pass
                except OSError as exc:
                    if exc.errno == errno.EIO:
                        raise ChannelClosed(f"serial port {self.port.port}: hung up") from exc
                    raise
                ready = self._loop.create_future()
                self._loop.add_writer(self._fd, lambda: ready.done() or ready.set_result(None))
                try:
                    await ready
                finally:
                    self._loop.remove_writer(self._fd)

    async def send_obj(self, obj: Any, *, timeout: float | None = None) -> None:
        await self.send(self.codec.encode(obj), timeout=timeout)

    # -- lifetime --------------------------------------------------------------
    def close(self) -> None:
        if self.closed:
            return
        self._stop_reading()
        try:
            os.write(self._fd, encode_frame(b"", CLOSE))  # best effort, never waits
        except OSError:
            pass
        self.port.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> "AsyncSerialChannel":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __aiter__(self) -> "AsyncSerialChannel":
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.recv()
        except ChannelClosed:
            raise StopAsyncIteration from None


async def open_channel(port: str, baudrate: int = 115200, *, codec: str = "json",
                       max_message_size: int = DEFAULT_MAX_PAYLOAD, on_bad_frame: str = "drop",
                       end_on_peer_close: bool = True, **settings: Any) -> AsyncSerialChannel:
    """Open ``port`` (opening never blocks) and return an :class:`AsyncSerialChannel`."""
    stream = _open_port(port, baudrate, **settings)
    try:
        return AsyncSerialChannel(stream, codec=codec, max_message_size=max_message_size,
                                  on_bad_frame=on_bad_frame, end_on_peer_close=end_on_peer_close)
    except BaseException:
        stream.close()
        raise


async def connect_address(addr: Any, *, timeout: float | None = None, **kw: Any) -> AsyncSerialChannel:
    """``await interproc.aio.connect("serial:///dev/ttyUSB0?baudrate=115200")``."""
    options: dict[str, Any] = {}
    for key, value in addr.query.items():
        if key not in _QUERY_KEYS:
            raise ValueError(f"address {addr.text!r}: unknown option {key!r}; expected one of {', '.join(_QUERY_KEYS)}")
        options[key] = _query_value(key, value, addr.text)
    options.update(kw)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            return await open_channel(addr.path, **options)
        except NotFound:
            if deadline is None:
                raise
            if time.monotonic() >= deadline:
                raise nobody_came(f"serial port {addr.path}", timeout) from None
            await asyncio.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
