"""Message framing shared by pipes and sockets: a sans-I/O core.

A frame is an 8-byte big-endian unsigned length followed by that many bytes.
The length is 64 bits so the format never needs to change, but every
receiver enforces its own ``max_message_size`` *before* allocating: a peer
announcing 2**63 bytes gets a :class:`FrameTooLarge` (a ``ProtocolError``),
not a MemoryError.

:class:`FrameDecoder` knows nothing about sockets, clocks or threads.  Bytes
go in through ``feed(data)`` or, without a copy, through the buffered-protocol
pair ``get_buffer()`` / ``buffer_updated(n)`` (the shape of
``asyncio.BufferedProtocol``, so the sync and the asyncio drivers share it);
whole frames come out of ``next_frame()``.  Large bodies are received straight
into their own buffer, so a 16 MiB message is not copied through a scratch
area first.

Memory follows the bytes that arrived, never the length a peer announced:
a body is received into chunks that double as data comes (the first one
64 KiB), so nine bytes announcing 255 MiB cost 64 KiB, not 255 MiB.  Only a
size this connection has already delivered in full is kept for reuse.
"""

from __future__ import annotations

import struct
from collections import deque
from typing import Any

from . import _native
from ._errors import ChannelClosed, MessageTooLarge, ProtocolError

HEADER = struct.Struct("!Q")
HEADER_SIZE = HEADER.size
#: Default largest message a receiver accepts (and a sender may send).
DEFAULT_MAX_MESSAGE = 256 * 1024 * 1024
_SCRATCH = 64 * 1024  # receive window for headers and small frames
_DIRECT = 16 * 1024  # bodies at least this large are received in place
# Large bodies land in one reused buffer up to this size.  A fresh 1 MiB
# bytearray per message costs more than the copy: glibc hands big blocks
# back to the OS on free, so every new one page-faults in again (measured:
# 3-4x lower throughput for 1 MiB messages).
_REUSE_MAX = 16 * 1024 * 1024


class FrameTooLarge(ProtocolError, MessageTooLarge):
    """The peer announced a frame larger than this side accepts."""


class TruncatedMessage(ProtocolError, ChannelClosed):
    """The stream ended inside a frame: the peer closed or died mid-message.

    It is a ``ChannelClosed`` (the peer is gone, iteration ends) and a
    ``ProtocolError`` (the partial message is dropped, never delivered).
    """


def as_buffer(data: Any) -> memoryview:
    """A flat byte view of any buffer (bytes, bytearray, memoryview, numpy).

    Non-contiguous arrays are copied once, since the OS needs flat bytes.
    """
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(
            f"a message must be a bytes-like object (bytes, bytearray, memoryview, numpy array), "
            f"not {type(data).__name__}; use send_obj() for other objects"
        ) from None
    if view.ndim == 1 and view.format in ("B", "b", "c") and view.contiguous:
        return view
    if view.c_contiguous:
        return view.cast("B")
    return memoryview(view.tobytes())


def check_size(n: int, max_size: int) -> None:
    """Refuse to *send* a message over the limit."""
    if n > max_size:
        raise MessageTooLarge(f"message of {n} bytes is over this channel's limit of {max_size} bytes")


def encode(data: Any, max_size: int = DEFAULT_MAX_MESSAGE) -> list[Any]:
    """The pieces of one frame, for ``sendmsg``/``writelines`` (no copy of big bodies)."""
    view = as_buffer(data)
    n = view.nbytes
    check_size(n, max_size)
    if n <= 4096:
        # One small write beats scatter-gather bookkeeping for small messages.
        return [HEADER.pack(n) + view.tobytes() if n else HEADER.pack(0)]
    return [HEADER.pack(n), view]


class FrameDecoder:
    """Turns a byte stream into whole frames; raises ``ProtocolError`` on bad input."""

    def __init__(self, max_size: int = DEFAULT_MAX_MESSAGE) -> None:
        if max_size < 0:
            raise ValueError("max_size must be >= 0")
        self.max_size = max_size
        self._buf = bytearray(_SCRATCH)
        self._mv = memoryview(self._buf)  # fixed size: never resized while viewed
        self._start = 0  # first unparsed byte in _buf
        self._end = 0  # end of valid data in _buf
        self._body: memoryview | None = None  # where the large body being received goes now
        self._body_fill = 0  # bytes in _body
        self._body_got = 0  # bytes of the whole body so far
        self._body_total = 0  # announced body length
        self._chunks: list[bytearray] | None = None  # growing storage (None: in _big)
        self._big = bytearray()  # reused storage for large bodies, sized by earlier messages
        self._frames: deque[bytes] = deque()
        self._error: ProtocolError | None = None
        self._hold = False

    def hold(self, max_size: int) -> None:
        """Handshake mode: a small limit, and parse one frame at a time so that
        data sent right after the handshake is judged by the real limit."""
        self._hold, self.max_size = True, max_size

    def release(self, max_size: int) -> None:
        """Leave handshake mode; parse what is already buffered with ``max_size``."""
        self._hold, self.max_size = False, max_size
        self._parse()

    # -- input -----------------------------------------------------------
    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Where the next bytes read from the stream should go."""
        if self._body is not None:
            if self._body_fill == len(self._body):
                self._next_chunk()
            return self._body[self._body_fill :]
        if len(self._buf) - self._end < _DIRECT:
            self._compact()
        return self._mv[self._end :]

    def read_from(self, recv_into: Any) -> int:
        """``get_buffer`` + ``recv_into(buffer)`` + ``buffer_updated`` in one call
        (the per-message hot path of the blocking driver); returns what
        ``recv_into`` returned, 0 meaning end of stream."""
        if self._body is not None:
            n = recv_into(self.get_buffer())
            if n:
                self.buffer_updated(n)
            return n
        end = self._end
        if len(self._buf) - end < _DIRECT:
            self._compact()
            end = self._end
        n = recv_into(self._mv[end:])
        if n:
            self._end = end + n
            self._parse()
        return n

    def buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` were written into the last ``get_buffer()``."""
        if self._body is not None:
            self._body_fill += nbytes
            self._body_got += nbytes
            if self._body_got == self._body_total:
                self._finish_body()
            return
        self._end += nbytes
        self._parse()

    def feed(self, data: Any) -> None:
        """Copy ``data`` in (for transports that hand over bytes objects)."""
        view = memoryview(data).cast("B")
        while view.nbytes:
            target = self.get_buffer()
            n = min(target.nbytes, view.nbytes)
            target[:n] = view[:n]
            view = view[n:]
            self.buffer_updated(n)

    def eof(self) -> None:
        """The stream ended: fine between frames, ``TruncatedMessage`` inside one."""
        if self._body is not None:
            what = f"{self._body_got} of {self._body_total} bytes"
            self._body.release()
            self._chunks = None
        elif self._end > self._start:
            what = f"{self._end - self._start} bytes"
        else:
            return
        self._body = None
        self._start = self._end = 0
        raise TruncatedMessage(f"the stream ended inside a message ({what} received); it was dropped")

    # -- output ----------------------------------------------------------
    def next_frame(self) -> bytes | None:
        """The oldest whole frame, or None if none is complete yet."""
        if self._frames:
            return self._frames.popleft()
        if self._error is not None:
            raise self._error
        return None

    @property
    def pending(self) -> int:
        """Whole frames ready to be taken."""
        return len(self._frames)

    def take_raw(self) -> bytes:
        """Every buffered byte not yet parsed (for switching to a raw byte stream)."""
        data = bytes(self._buf[self._start : self._end])
        self._start = self._end = 0
        return data

    # -- internals -------------------------------------------------------
    def _compact(self) -> None:
        live = self._end - self._start
        if self._start:
            self._buf[:live] = self._buf[self._start : self._end]
            self._start, self._end = 0, live
        if len(self._buf) - live < _DIRECT:
            # Only in handshake mode can unparsed bytes fill the window (data
            # sent right behind the hello); grow rather than stall.
            grown = bytearray(2 * len(self._buf))
            grown[:live] = self._buf[:live]
            self._buf, self._mv = grown, memoryview(grown)

    def _parse(self) -> None:
        if self._error is not None:
            return
        buf, start, end = self._buf, self._start, self._end
        unpack, frames, hold, limit = HEADER.unpack_from, self._frames, self._hold, self.max_size
        if not hold:
            # Every complete frame within the limit, in C; the loop below
            # judges whatever it stopped at (too large, incomplete, big body).
            start = _native.frame_scan(buf, start, end, limit, frames.append)
        while end - start >= HEADER_SIZE:
            if hold and frames:
                break
            (n,) = unpack(buf, start)
            if n > limit:
                # Everything after a bad header is unparseable: stop here for good.
                self._error = FrameTooLarge(f"peer announced a message of {n} bytes, over the limit of {limit} bytes")
                start = end
                break
            body_at = start + HEADER_SIZE
            if end - body_at >= n:
                frames.append(bytes(buf[body_at : body_at + n]))
                start = body_at + n
                continue
            if n >= _DIRECT:
                self._start_body(n, buf, body_at, end)
                start = end
            break
        if start == end:
            start = end = 0
            if len(buf) > _SCRATCH:  # back to the normal window after a handshake burst
                self._buf = bytearray(_SCRATCH)
                self._mv = memoryview(self._buf)
        self._start, self._end = start, end

    def _start_body(self, n: int, buf: bytearray, at: int, end: int) -> None:
        have = end - at
        if len(self._big) >= n:
            body, self._chunks = memoryview(self._big)[:n], None
        else:
            first = bytearray(min(n, max(_SCRATCH, 2 * have)))
            body, self._chunks = memoryview(first), [first]
        body[:have] = buf[at:end]
        self._body, self._body_fill, self._body_got, self._body_total = body, have, have, n

    def _next_chunk(self) -> None:
        # Double what arrived so far: the copies into the final frame stay
        # linear, and a peer that stops sending has cost what it sent.
        assert self._chunks is not None and self._body is not None
        chunk = bytearray(min(self._body_total - self._body_got, max(_SCRATCH, self._body_got)))
        self._chunks.append(chunk)
        self._body.release()
        self._body, self._body_fill = memoryview(chunk), 0

    def _finish_body(self) -> None:
        assert self._body is not None
        if self._chunks is None:
            frame = self._body.tobytes()
            self._body.release()
        else:
            self._body.release()
            frame = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
            frame = bytes(frame)
            if self._body_total <= _REUSE_MAX:
                # The peer delivered this size in full: keep room for the next one.
                self._big = bytearray(self._body_total)
        self._frames.append(frame)
        self._body, self._chunks = None, None
