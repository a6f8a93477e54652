"""The framed serial channel without I/O: shared by ``SerialChannel`` (blocking)
and ``AsyncSerialChannel`` (asyncio), which only move bytes.

Bytes from the line go in with :meth:`SerialSession.feed`; whole messages
come out of :meth:`SerialSession.next_message`, which also applies the
rules: a bad frame is dropped and counted (or reported as ``ProtocolError``
with ``on_bad_frame="raise"``), a CLOSE frame ends the channel (or is only
counted with ``end_on_peer_close=False``).  :meth:`SerialSession.encode`
turns an outgoing message into its frame, refusing what the peer will never
read.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from .._errors import ChannelClosed, MessageTooLarge, ProtocolError
from ._cobs import CLOSE, DATA, FrameDecoder, encode_frame
from . import _byte_view as byte_view


class SerialSession:
    def __init__(self, port: str, *, max_message_size: int, on_bad_frame: str = "drop",
                 end_on_peer_close: bool = True) -> None:
        if on_bad_frame not in ("drop", "raise"):
            raise ValueError(f"on_bad_frame must be 'drop' or 'raise', not {on_bad_frame!r}")
        if isinstance(max_message_size, bool) or not isinstance(max_message_size, int) or max_message_size <= 0:
            raise ValueError(f"max_message_size must be a positive integer, not {max_message_size!r}")
        self.port = port
        self.max_message_size = max_message_size
        self.on_bad_frame = on_bad_frame
        self.end_on_peer_close = bool(end_on_peer_close)
        self.decoder = FrameDecoder(max_message_size)
        self.frames: deque[bytes] = deque()
        self.peer_closed = False
        self.peer_closes = 0
        self._bad_pending = 0  # drops not yet reported (on_bad_frame="raise")

    def feed(self, data: bytes) -> None:
        """Bytes read from the line."""
        before = self.decoder.dropped
        for kind, payload in self.decoder.feed(data):
            if kind == DATA and not self.peer_closed:
                self.frames.append(payload)
            elif kind == CLOSE:
                self.peer_closes += 1
                if self.end_on_peer_close:
                    self.peer_closed = True
        self._bad_pending += self.decoder.dropped - before

    def next_message(self) -> bytes | None:
        """The next message, None if more bytes are needed; ``ProtocolError`` for
        a dropped frame (``on_bad_frame="raise"``), ``ChannelClosed`` once the peer closed."""
        if self.on_bad_frame == "raise" and self._bad_pending:
            self._bad_pending = 0
            raise ProtocolError(f"serial port {self.port}: bad frame dropped ({self.decoder.last_error})")
        if self.frames:
            return self.frames.popleft()
        if self.peer_closed:
            raise ChannelClosed(f"serial port {self.port}: the peer closed the channel")
        return None

    def encode(self, data: Any) -> bytes:
        """The frame carrying ``data``."""
        if self.peer_closed:
            # Nobody will read it: the peer said goodbye; open a new channel to
            # talk to whoever uses the line next.
            raise ChannelClosed(f"serial port {self.port}: the peer closed the channel")
        view = byte_view(data)
        if len(view) > self.max_message_size:
            raise MessageTooLarge(
                f"message of {len(view)} bytes is over max_message_size={self.max_message_size} on {self.port}"
            )
        return encode_frame(view, DATA)

    @staticmethod
    def close_frame() -> bytes:
        return encode_frame(b"", CLOSE)


class SessionStats:
    """What both serial channels (blocking and asyncio) report about their session."""

    _session: SerialSession

    @property
    def dropped_frames(self) -> int:
        """Corrupt, truncated or oversized frames thrown away so far."""
        return self._session.decoder.dropped

    @property
    def last_drop_reason(self) -> str | None:
        return self._session.decoder.last_error

    @property
    def peer_closes(self) -> int:
        """CLOSE frames received so far."""
        return self._session.peer_closes


# -- serial:///dev/...?baudrate=... addresses ---------------------------------

_BOOL = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
QUERY_KEYS = ("baudrate", "bytesize", "parity", "stopbits", "xonxoff", "rtscts", "dsrdtr", "exclusive",
              "timeout", "write_timeout", "codec", "max_message_size", "on_bad_frame", "end_on_peer_close")


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


def address_options(addr: Any, kw: dict) -> dict:
    """The ``open_channel`` arguments of a ``serial://`` address and the caller's ``kw``."""
    options: dict[str, Any] = {}
    for key, value in addr.query.items():
        if key not in QUERY_KEYS:
            raise ValueError(f"address {addr.text!r}: unknown option {key!r}; expected one of {', '.join(QUERY_KEYS)}")
        options[key] = _query_value(key, value, addr.text)
    options.update(kw)
    return options
