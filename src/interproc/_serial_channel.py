"""The framed message channel on a serial port, and ``serial://`` addresses.

:class:`SerialChannel` puts the COBS + CRC-32 frames of ``_framing_cobs``
on a :class:`~interproc._serial.SerialPort`; see ``docs/serial.md`` for the
wire format and what happens to bad frames.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from typing import Any

from ._channel import Channel
from ._errors import ChannelClosed, MessageTooLarge, NotFound, ProtocolError, Timeout
from ._framing_cobs import CLOSE, DATA, DEFAULT_MAX_PAYLOAD, FrameDecoder, encode_frame
from ._serial import _CHUNK, SerialPort, _deadline, _byte_view, open as _open_port
from ._timeout import nobody_came


def _finalize_channel(port: SerialPort) -> None:
    # Tell the peer we are gone (best effort: never wait on a full line here).
    if not port.closed:
        try:
            os.write(port._fd, encode_frame(b"", CLOSE))
        except OSError:
            pass
        port.close()


class SerialChannel(Channel):
    """Messages over a serial line: COBS frames with a CRC-32 (see ``_framing_cobs``).

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
        if on_bad_frame not in ("drop", "raise"):
            raise ValueError(f"on_bad_frame must be 'drop' or 'raise', not {on_bad_frame!r}")
        if isinstance(max_message_size, bool) or not isinstance(max_message_size, int) or max_message_size <= 0:
            raise ValueError(f"max_message_size must be a positive integer, not {max_message_size!r}")
        self.port = port
        self.max_message_size = max_message_size
        self.on_bad_frame = on_bad_frame
        self._decoder = FrameDecoder(max_message_size)
        self._frames: deque[bytes] = deque()
        self._peer_closed = False
        self.end_on_peer_close = bool(end_on_peer_close)
        self.peer_closes = 0
        self._send_lock = threading.Lock()
        self._recv_lock = threading.Lock()
        super().__init__(codec=codec)

    def __repr__(self) -> str:
        return f"<SerialChannel {self.port.port!r}{' closed' if self.closed else ''} dropped_frames={self.dropped_frames}>"

    @property
    def dropped_frames(self) -> int:
        """Corrupt, truncated or oversized frames thrown away so far."""
        return self._decoder.dropped

    @property
    def last_drop_reason(self) -> str | None:
        return self._decoder.last_error

    def fileno(self) -> int:
        return self.port.fileno()

    def _resources(self) -> Any:
        return self.port

    @staticmethod
    def _finalize(resources: Any) -> None:
        _finalize_channel(resources)

    def _send_bytes(self, data: Any, timeout: float | None) -> None:
        if self._peer_closed:
            # Nobody will read it: the peer said goodbye (see recv); open a new
            # channel to talk to whoever uses the line next.
            raise ChannelClosed(f"serial port {self.port.port}: the peer closed the channel")
        view = _byte_view(data)
        if len(view) > self.max_message_size:
            raise MessageTooLarge(
                f"message of {len(view)} bytes is over max_message_size={self.max_message_size} on {self.port.port}"
            )
        frame = encode_frame(view, DATA)
        deadline = _deadline(timeout)
        if not self._send_lock.acquire(timeout=-1 if timeout is None else timeout):
            raise Timeout(f"serial port {self.port.port}: send timed out waiting for another sender")
        try:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            self.port.write(frame, timeout=left)
        finally:
            self._send_lock.release()

    def _recv_bytes(self, timeout: float | None) -> bytes:
        deadline = _deadline(timeout)
        if not self._recv_lock.acquire(timeout=-1 if timeout is None else timeout):
            raise Timeout(f"serial port {self.port.port}: recv timed out waiting for another receiver")
        try:
            while True:
                if self._frames:
                    return self._frames.popleft()
                if self._peer_closed:
                    raise ChannelClosed(f"serial port {self.port.port}: the peer closed the channel")
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                before = self._decoder.dropped
                try:
                    data = self.port.read(_CHUNK, timeout=left)
                except Timeout:
                    raise Timeout(f"serial port {self.port.port}: recv timed out after {timeout}s") from None
                for kind, payload in self._decoder.feed(data):
                    if kind == DATA and not self._peer_closed:
                        self._frames.append(payload)
                    elif kind == CLOSE:
                        self.peer_closes += 1
                        if self.end_on_peer_close:
                            self._peer_closed = True
                if self.on_bad_frame == "raise" and self._decoder.dropped != before:
                    raise ProtocolError(f"serial port {self.port.port}: bad frame dropped ({self._decoder.last_error})")
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


# -- serial:///dev/...?baudrate=... addresses ---------------------------------

_BOOL = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _query_value(key: str, value: str, text: str) -> Any:
    try:
        if key in ("baudrate", "bytesize", "max_message_size"):
            return int(value)
        if key in ("stopbits",):
            f = float(value)
            return int(f) if f.is_integer() else f
        if key in ("timeout", "write_timeout"):
            return None if value.lower() in ("", "none") else float(value)
        if key in ("xonxoff", "rtscts", "dsrdtr", "exclusive", "end_on_peer_close"):
            return _BOOL[value.lower()]
    except (ValueError, KeyError):
        raise ValueError(f"address {text!r}: bad value {value!r} for {key}") from None
    return value  # parity, codec, on_bad_frame: validated where they are used


_QUERY_KEYS = ("baudrate", "bytesize", "parity", "stopbits", "xonxoff", "rtscts", "dsrdtr", "exclusive",
               "timeout", "write_timeout", "codec", "max_message_size", "on_bad_frame", "end_on_peer_close")


def connect_address(addr: Any, *, timeout: float | None = None, **kw: Any) -> SerialChannel:
    """``interproc.connect("serial:///dev/ttyUSB0?baudrate=115200")``: a framed channel.

    Without ``timeout=`` a missing device is ``NotFound`` at once; with it,
    wait that long for the device to appear (a USB adapter being plugged in),
    then ``Timeout``.
    """
    options: dict[str, Any] = {}
    for key, value in addr.query.items():
        if key not in _QUERY_KEYS:
            raise ValueError(f"address {addr.text!r}: unknown option {key!r}; expected one of {', '.join(_QUERY_KEYS)}")
        options[key] = _query_value(key, value, addr.text)
    options.update(kw)
    deadline = _deadline(timeout)
    while True:
        try:
            return open_channel(addr.path, **options)
        except NotFound:
            if deadline is None:
                raise
            if time.monotonic() >= deadline:
                raise nobody_came(f"serial port {addr.path}", timeout) from None
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
