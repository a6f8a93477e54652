"""The framed message channel on a serial port, and ``serial://`` addresses.

:class:`SerialChannel` puts the COBS + CRC-32 frames of ``_serial._cobs``
on a :class:`~interproc._serial.SerialPort`; see ``docs/serial.md`` for the
wire format and what happens to bad frames.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from .._channel import Channel
from .._deadline import appear_delay, deadline_of, time_left
from .._errors import NotFound, Timeout
from ._cobs import CLOSE, DEFAULT_MAX_PAYLOAD, encode_frame
from . import READ_CHUNK, SerialPort, open as _open_port
from ._core import SerialSession, SessionStats, address_options


def _finalize_channel(port: SerialPort) -> None:
    # Tell the peer we are gone (best effort: never wait on a full line here).
    if not port.closed:
        try:
            os.write(port._fd, encode_frame(b"", CLOSE))
        except OSError:
            pass
        port.close()


class SerialChannel(SessionStats, Channel):
    """Messages over a serial line: COBS frames with a CRC-32 (see ``_serial._cobs``).

    A corrupted or truncated frame is dropped and counted in
    ``dropped_frames`` (``on_bad_frame="raise"`` makes ``recv`` raise
    ``ProtocolError`` instead); the stream resynchronises on the next
    delimiter, so good frames are never lost.  ``close()`` sends a CLOSE
    frame, so the peer's ``recv`` raises ``ChannelClosed`` and its iteration
    ends; a peer that dies without closing is only noticed by ``timeout=``.
    With ``end_on_peer_close=False`` CLOSE frames are only counted
    (``peer_closes``) and the channel keeps receiving from whoever opens the
    other end next (a logger that outlives many senders).

    Closing the channel closes its ``port``.
    """

    #: Whatever is at the other end of a cable is not authenticated, so the
    #: pickle codec is refused (``PermissionDenied``).
    trusted = False

    def __init__(
        self,
        port: SerialPort,
        *,
        codec: str = "json",
        max_message_size: int = DEFAULT_MAX_PAYLOAD,
        on_bad_frame: str = "drop",
        end_on_peer_close: bool = True,
    ) -> None:
        self._session = SerialSession(port.port, max_message_size=max_message_size, on_bad_frame=on_bad_frame,
                                      end_on_peer_close=end_on_peer_close)
        self.port = port
        self.max_message_size = max_message_size
        self.on_bad_frame = on_bad_frame
        self.end_on_peer_close = bool(end_on_peer_close)
        self._send_lock = threading.Lock()
        self._recv_lock = threading.Lock()
        super().__init__(codec=codec)

    def __repr__(self) -> str:
        return f"<SerialChannel {self.port.port!r}{' closed' if self.closed else ''} dropped_frames={self.dropped_frames}>"

    def ready(self) -> bool:
        """A message (or the peer's CLOSE) is buffered: ``recv()`` will not wait."""
        return bool(self._session.frames) or self._session.peer_closed

    def fileno(self) -> int:
        return self.port.fileno()

    def _resources(self) -> Any:
        return self.port

    @staticmethod
    def _finalize(resources: Any) -> None:
        _finalize_channel(resources)

    def _send_bytes(self, data: Any, timeout: float | None) -> None:
        frame = self._session.encode(data)
        deadline = deadline_of(timeout)
        if not self._send_lock.acquire(timeout=-1 if timeout is None else timeout):
            raise Timeout(f"serial port {self.port.port}: send timed out waiting for another sender")
        try:
            self.port.write(frame, timeout=time_left(deadline))
        finally:
            self._send_lock.release()

    def _recv_bytes(self, timeout: float | None) -> bytes:
        deadline = deadline_of(timeout)
        if not self._recv_lock.acquire(timeout=-1 if timeout is None else timeout):
            raise Timeout(f"serial port {self.port.port}: recv timed out waiting for another receiver")
        session = self._session
        try:
            while True:
                msg = session.next_message()
                if msg is not None:
                    return msg
                try:
                    data = self.port.read(READ_CHUNK, timeout=time_left(deadline))
                except Timeout:
                    raise Timeout(f"serial port {self.port.port}: recv timed out after {timeout}s") from None
                session.feed(data)
        finally:
            self._recv_lock.release()


def open_channel(
    port: str,
    baudrate: int = 115200,
    *,
    codec: str = "json",
    max_message_size: int = DEFAULT_MAX_PAYLOAD,
    on_bad_frame: str = "drop",
    end_on_peer_close: bool = True,
    **settings: Any,
) -> SerialChannel:
    """Open ``port`` and return a framed message :class:`SerialChannel` on it."""
    stream = _open_port(port, baudrate, **settings)
    try:
        return SerialChannel(stream, codec=codec, max_message_size=max_message_size, on_bad_frame=on_bad_frame,
                             end_on_peer_close=end_on_peer_close)
    except BaseException:
        stream.close()
        raise


def connect_address(addr: Any, *, timeout: float | None = None, **kw: Any) -> SerialChannel:
    """``interproc.connect("serial:///dev/ttyUSB0?baudrate=115200")``: a framed channel.

    Without ``timeout=`` a missing device is ``NotFound`` at once; with it,
    wait that long for the device to appear (a USB adapter being plugged in),
    then ``Timeout``.
    """
    options = address_options(addr, kw)
    deadline = deadline_of(timeout)
    while True:
        try:
            return open_channel(addr.path, **options)
        except NotFound:
            if deadline is None:
                raise
            time.sleep(appear_delay(deadline, timeout, f"serial port {addr.path}", 0.1))
