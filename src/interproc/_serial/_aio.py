"""asyncio version of the framed serial channel, on the same sans-I/O core
(:class:`~interproc._serial._core.SerialSession`) as the blocking one.

The port's non-blocking fd is watched with ``loop.add_reader`` /
``add_writer``: bytes go through :class:`~interproc._serial._cobs.FrameDecoder`
as they arrive, and ``recv()`` awaits a future completed by the reader
callback; nothing polls.  Reading stops while many frames wait unread (flow
control reaches the sender through the tty buffers).

    ch = await interproc._serial._aio.open_channel("/dev/ttyUSB0", 115200)
    await ch.send(b"hi"); await ch.recv(timeout=1)
    async for msg in ch: ...

``connect_address`` serves ``serial://`` for ``interproc.aio.connect``.
"""

from __future__ import annotations

import asyncio
import errno
import os
from typing import Any

from .. import _contract
from .._codec import Codec, get_codec
from .._deadline import appear_delay, deadline_of, time_left
from .._errors import ChannelClosed, HandleClosed, NotFound, Timeout
from ._cobs import DEFAULT_MAX_PAYLOAD
from . import READ_CHUNK, SerialPort
from . import open as _open_port
from ._core import SerialSession, SessionStats, address_options

_HIGH_FRAMES = 256  # stop reading when this many frames wait unread
_LOW_FRAMES = 32


class AsyncSerialChannel(SessionStats, _contract.AsyncChannel):
    """Messages over a serial line for asyncio; same frames and rules as ``SerialChannel``."""

    trusted = False  # the far end of a cable is not authenticated: no pickle

    def __init__(self, port: SerialPort, *, codec: str | Codec = "json", max_message_size: int = DEFAULT_MAX_PAYLOAD,
                 on_bad_frame: str = "drop", end_on_peer_close: bool = True) -> None:
        self._session = SerialSession(port.port, max_message_size=max_message_size, on_bad_frame=on_bad_frame,
                                      end_on_peer_close=end_on_peer_close)
        self._frames = self._session.frames  # for flow control
        self.port = port
        self.codec = get_codec(codec, trusted=self.trusted)
        self.max_message_size = max_message_size
        self.on_bad_frame = on_bad_frame
        self.end_on_peer_close = bool(end_on_peer_close)
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
            data = os.read(self._fd, READ_CHUNK)
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
            self._session.feed(data)
            if len(self._frames) >= _HIGH_FRAMES:
                self._stop_reading()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def recv(self, *, timeout: float | None = None) -> bytes:
        """One whole message; ``Timeout``, or ``ChannelClosed`` once the peer closed."""
        if self.closed:
            raise HandleClosed(f"recv on serial port {self.port.port} after its close()")
        deadline = deadline_of(timeout)
        while True:
            msg = self._session.next_message()
            if msg is not None:
                if len(self._frames) <= _LOW_FRAMES:
                    self._start_reading()
                return msg
            if self._error is not None:
                raise self._error
            if self.closed:
                raise HandleClosed(f"serial port {self.port.port} was closed while receiving")
            self._waiter = self._loop.create_future()
            try:
                await asyncio.wait_for(self._waiter, time_left(deadline))
            except asyncio.TimeoutError:
                raise Timeout(f"serial port {self.port.port}: recv timed out after {timeout}s") from None
            finally:
                self._waiter = None

    # -- writing ---------------------------------------------------------------
    async def send(self, data: Any, *, timeout: float | None = None) -> None:
        """Send one message.  A send cut short by its timeout may leave half a
        frame on the line; the peer drops and counts it, later frames are fine."""
        if self.closed:
            raise HandleClosed(f"send on serial port {self.port.port} after its close()")
        frame = memoryview(self._session.encode(data))
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

    # -- lifetime --------------------------------------------------------------
    def close(self) -> None:
        if self.closed:
            return
        self._stop_reading()
        try:
            os.write(self._fd, self._session.close_frame())  # best effort, never waits
        except OSError:
            pass
        self.port.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


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
    options = address_options(addr, kw)
    deadline = deadline_of(timeout)
    while True:
        try:
            return await open_channel(addr.path, **options)
        except NotFound:
            if deadline is None:
                raise
            await asyncio.sleep(appear_delay(deadline, timeout, f"serial port {addr.path}", 0.1))
