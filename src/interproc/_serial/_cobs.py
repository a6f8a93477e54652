"""Message framing for byte streams that can lose or corrupt bytes (serial lines).

Sans-I/O: :func:`encode_frame` turns a message into bytes to write, and
:class:`FrameDecoder` turns whatever bytes were read into whole frames.  No
file descriptors, clocks or threads in here.

Wire format of one frame::

    0x00  COBS( kind:1  payload:N  crc32(kind + payload):4 little-endian )  0x00

* COBS (Consistent Overhead Byte Stuffing) removes every zero byte from the
  body, so 0x00 only ever appears as a delimiter.  Overhead: 1 byte per 254.
* The frame is written with a delimiter on *both* sides.  A receiver that
  starts listening mid-frame, or line noise between two frames, then ends up
  as a separate junk chunk, which fails its CRC and is dropped, and the frame
  after it still starts cleanly: good frames are never lost to noise that
  falls between them.  Empty chunks (two delimiters in a row) are idle line,
  not errors.
* ``kind`` is :data:`DATA` (a message) or :data:`CLOSE` (the sender closed
  its channel).  Unknown kinds are dropped like corrupt frames, so a later
  version can add kinds without confusing this one.
* CRC-32 is zlib's (IEEE 802.3, as in Ethernet, zip and PNG).
"""

from __future__ import annotations

import struct
import zlib
from typing import NamedTuple

DATA = 0
CLOSE = 1
_KINDS = (DATA, CLOSE)

_CRC = struct.Struct("<I")
_OVERHEAD = 1 + _CRC.size  # kind byte + CRC

#: Default largest payload a decoder accepts (a bigger frame is dropped).
DEFAULT_MAX_PAYLOAD = 16 * 1024 * 1024


class CobsError(ValueError):
    """Bytes that are not a valid COBS encoding."""


def cobs_encode(data: bytes | bytearray | memoryview) -> bytes:
    """COBS-encode ``data``: the result holds no zero byte (no delimiter added)."""
    out = bytearray()
    pieces = bytes(data).split(b"\0")
    last = len(pieces) - 1
    for i, piece in enumerate(pieces):
        # Each piece stands for "these bytes, then a zero" (except the last).
        # A code byte c means: c-1 data bytes follow, then an implied zero,
        # except 0xFF, which means 254 data bytes and no zero.
        n = len(piece)
        pos = 0
        while n - pos >= 254:
            out.append(0xFF)
            out += piece[pos : pos + 254]
            pos += 254
            if pos == n and i == last:
                # Canonical form: no empty block after a full last block.
                return bytes(out)
        out.append(n - pos + 1)
        out += piece[pos:]
    return bytes(out)


def cobs_decode(enc: bytes | bytearray | memoryview) -> bytes:
    """Decode one COBS block sequence (without its delimiter); ``CobsError`` if invalid."""
    enc = bytes(enc)
    n = len(enc)
    if n == 0:
        raise CobsError("empty COBS frame")
    out = bytearray()
    i = 0
    while i < n:
        code = enc[i]
        if code == 0:
            raise CobsError(f"zero byte inside a COBS frame at offset {i}")
        end = i + code
        if end > n:
            raise CobsError(f"COBS block at offset {i} runs past the end ({code - 1} bytes announced, {n - i - 1} left)")
        block = enc[i + 1 : end]
        if 0 in block:
            raise CobsError(f"zero byte inside a COBS block at offset {i + 1 + block.index(0)}")
        out += block
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


def encode_frame(payload: bytes | bytearray | memoryview, kind: int = DATA) -> bytes:
    """The bytes to write for one frame, delimiters included."""
    if kind not in _KINDS:
        raise ValueError(f"unknown frame kind {kind!r}")
    body = bytearray((kind,))
    body += payload
    body += _CRC.pack(zlib.crc32(body))
    return b"\0" + cobs_encode(body) + b"\0"


def max_encoded_size(max_payload: int) -> int:
    """Longest chunk (between delimiters) a payload of ``max_payload`` bytes can encode to."""
    body = max_payload + _OVERHEAD
    return body + body // 254 + 1


class Frame(NamedTuple):
    kind: int
    payload: bytes


class FrameDecoder:
    """Bytes in, frames out.  Bad chunks are dropped and counted, never raised.

    ``feed(data)`` returns the complete frames the new bytes finished, in
    order.  ``dropped`` counts chunks thrown away (bad COBS, too short, bad
    CRC, unknown kind, or longer than ``max_payload``); ``last_error`` says
    why the most recent one was.
    """

    def __init__(self, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        if max_payload < 0:
            raise ValueError(f"max_payload must be >= 0, not {max_payload}")
        self.max_payload = max_payload
        self._max_chunk = max_encoded_size(max_payload)
        self._buf = bytearray()
        self._discarding = False  # inside an oversized chunk: skip to the next delimiter
        self.dropped = 0
        self.frames = 0
        self.last_error: str | None = None

    @property
    def pending(self) -> int:
        """Bytes held waiting for a delimiter."""
        return len(self._buf)

    def _drop(self, why: str) -> None:
        self.dropped += 1
        self.last_error = why

    def _chunk(self, chunk: bytes | bytearray, out: list[Frame]) -> None:
        if not chunk:
            return  # idle line between delimiters
        try:
            body = cobs_decode(chunk)
        except CobsError as exc:
            self._drop(f"bad COBS: {exc}")
            return
        if len(body) < _OVERHEAD:
            self._drop(f"frame too short ({len(body)} bytes)")
            return
        (crc,) = _CRC.unpack_from(body, len(body) - _CRC.size)
        content = memoryview(body)[: -_CRC.size]
        if zlib.crc32(content) != crc:
            self._drop("CRC mismatch")
            return
        kind = body[0]
        if kind not in _KINDS:
            self._drop(f"unknown frame kind {kind}")
            return
        if len(content) - 1 > self.max_payload:
            self._drop(f"frame payload over max_payload={self.max_payload}")
            return
        self.frames += 1
        out.append(Frame(kind, bytes(content[1:])))

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        out: list[Frame] = []
        data = bytes(data)
        start = 0
        while True:
            zero = data.find(b"\0", start)
            if zero < 0:
                break
            if self._discarding:
                self._discarding = False  # the oversized chunk ends here; already counted
            else:
                self._buf += data[start:zero]
                if len(self._buf) > self._max_chunk:
                    self._drop(f"frame longer than max_payload={self.max_payload}")
                else:
                    self._chunk(self._buf, out)
            self._buf.clear()
            start = zero + 1
        if not self._discarding:
            self._buf += data[start:]
            if len(self._buf) > self._max_chunk:
                # Never hold more than one frame's worth of bytes: noise with no
                # delimiter in it must not grow memory without bound.
                self._drop(f"frame longer than max_payload={self.max_payload}")
                self._buf.clear()
                self._discarding = True
        return out

    def reset(self) -> None:
        """Forget a partial frame (e.g. after flushing the port's input)."""
        self._buf.clear()
        self._discarding = False
