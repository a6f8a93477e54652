"""Window messages without I/O: the wire format, a window's queue, a sender's matching.

A window is an endpoint on a framed channel (AF_UNIX in the runtime dir by
default).  Every frame, in either direction, is a 26-byte header and a body::

    kind u8 | flags u8 | req_id u32 | msg u32 | wparam i64 | lparam i64 | body...   (big-endian)

    sender -> window   SEND 1, POST 2       body: the data (flag INLINE) or
                                            size u64 + shm segment name (flag SHM)
    window -> sender   REPLY 0x81           flags = status; body = JSON result or
                                            {"type", "message", "traceback"}

:class:`WindowCore` is the window's side: frames in (with the sender's pid
and uid, and the time, passed in), a bounded queue of posted messages and a
queue of sent ones, replies out.  It never touches a socket, a clock or a
thread; the drivers in ``_window.py`` and ``_aio.py`` do.  The "hung" rule
of SMTO_ABORTIFHUNG (the owner has not pumped for 5 s) is computed here from
the times the driver reports.
"""

from __future__ import annotations

import json
import struct
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .._errors import InterprocError, NotFound, PermissionDenied, ProtocolError, RemoteError, Timeout

HEADER = struct.Struct("!BBIIqq")
SEND, POST, REPLY = 1, 2, 0x81
# request flags
F_INLINE, F_SHM, F_ABORT_IF_HUNG = 1, 2, 4
# reply status (in the flags byte of a REPLY)
OK, ERROR, FULL, HUNG, REFUSED, BAD_FRAME = 0, 1, 2, 3, 4, 5
_SHM_SIZE = struct.Struct("!Q")

WM_COPYDATA = 0x004A
WM_USER = 0x0400
#: RegisterWindowMessage's range.
REGISTERED_FIRST, REGISTERED_LAST = 0xC000, 0xFFFF
#: The classic limit of posted messages in one queue.
DEFAULT_QUEUE_LIMIT = 10_000
#: SMTO_ABORTIFHUNG's rule: a window whose owner has not pumped for this long is hung.
HUNG_AFTER = 5.0
_I64 = (-(2**63), 2**63 - 1)


def check_param(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not _I64[0] <= value <= _I64[1]:
        raise ValueError(f"{what} {value} does not fit in 64 bits")
    return value


def check_msg(msg: Any) -> int:
    if isinstance(msg, bool) or not isinstance(msg, int) or not 0 <= msg <= 0xFFFFFFFF:
        raise ValueError(f"message id must be an int in 0..0xFFFFFFFF, got {msg!r}")
    return msg


def encode_request(kind: int, req_id: int, msg: int, wparam: int, lparam: int, *,
                   data: Any = None, shm: tuple[str, int] | None = None, abort_if_hung: bool = False) -> list[Any]:
    """The frame of a SEND or POST, as pieces (the data is not copied)."""
    flags = F_ABORT_IF_HUNG if abort_if_hung else 0
    body: list[Any] = []
    if shm is not None:
        flags |= F_SHM
        body = [_SHM_SIZE.pack(shm[1]) + shm[0].encode()]
    elif data is not None:
        flags |= F_INLINE
        body = [data]
    return [HEADER.pack(kind, flags, req_id, msg, wparam, lparam), *body]


def encode_reply(req_id: int, status: int, payload: Any) -> bytes:
    try:
        body = json.dumps(payload, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        status, body = ERROR, json.dumps(error_payload(TypeError(f"the handler's result is not JSON: {exc}"))).encode()
    return HEADER.pack(REPLY, status, req_id, 0, 0, 0) + body


def error_payload(exc: BaseException) -> dict:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return {"type": type(exc).__name__, "message": str(exc), "traceback": tb}


@dataclass
class Message:
    """One message as a handler sees it (``m.msg, m.wparam, m.lparam, m.data, m.sender_pid, m.sender_uid``)."""

    msg: int
    wparam: int
    lparam: int
    data: Any  # bytes, a read-only memoryview (large WM_COPYDATA, valid during the handler), or None
    sender_pid: int
    sender_uid: int
    posted: bool = False
    # where the reply goes: the driver's connection object and the request id
    conn: Any = field(default=None, repr=False)
    req_id: int = field(default=0, repr=False)
    shm: tuple[str, int] | None = field(default=None, repr=False)  # (segment, size) to map before dispatch

    @property
    def tag(self) -> int:
        """WM_COPYDATA's ``dwData`` (it travels as ``lparam``)."""
        return self.lparam


def parse_header(frame: bytes) -> tuple[int, int, int, int, int, int, memoryview]:
    if len(frame) < HEADER.size:
        raise ProtocolError(f"a window-message frame of {len(frame)} bytes is shorter than its {HEADER.size}-byte header")
    kind, flags, req_id, msg, wparam, lparam = HEADER.unpack_from(frame)
    return kind, flags, req_id, msg, wparam, lparam, memoryview(frame)[HEADER.size :]


class WindowCore:
    """A window's queues and replies.  The driver holds a lock around every call."""

    def __init__(self, *, max_queue: int = DEFAULT_QUEUE_LIMIT, hung_after: float = HUNG_AFTER, now: float = 0.0) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue}")
        self.max_queue = max_queue
        self.hung_after = hung_after
        self.posted: deque[Message] = deque()
        self.sent: deque[Message] = deque()
        self.pumping = False  # the owner is waiting inside pump()/run()
        self.last_pump = now

    def pump_state(self, pumping: bool, now: float) -> None:
        self.pumping = pumping
        self.last_pump = now

    def hung(self, now: float) -> bool:
        return not self.pumping and now - self.last_pump >= self.hung_after

    def receive(self, conn: Any, frame: bytes, pid: int, uid: int, now: float) -> bytes | None:
        """Take one frame from a sender; return a reply to send at once, or None (queued send)."""
        kind, flags, req_id, msg, wparam, lparam, body = parse_header(frame)
        if kind not in (SEND, POST):
            raise ProtocolError(f"unknown window-message frame kind {kind}")
        data: Any = None
        shm = None
        if flags & F_SHM:
            if len(body) < _SHM_SIZE.size + 1:
                raise ProtocolError("a shared-memory WM_COPYDATA frame is too short")
            (size,) = _SHM_SIZE.unpack_from(body)
            try:
                seg = bytes(body[_SHM_SIZE.size :]).decode("ascii")
            except UnicodeDecodeError:
                raise ProtocolError("a shared-memory WM_COPYDATA frame names a non-ASCII segment") from None
            shm = (seg, size)
        elif flags & F_INLINE:
            data = bytes(body)
        m = Message(msg, wparam, lparam, data, pid, uid, posted=kind == POST, conn=conn, req_id=req_id, shm=shm)
        if kind == POST:
            if msg == WM_COPYDATA:
                return encode_reply(req_id, REFUSED, {"type": "ValueError",
                                                      "message": "WM_COPYDATA must be sent, never posted"})
            if len(self.posted) >= self.max_queue:
                return encode_reply(req_id, FULL, {"limit": self.max_queue})
            self.posted.append(m)
            return encode_reply(req_id, OK, None)
        if flags & F_ABORT_IF_HUNG and self.hung(now):
            return encode_reply(req_id, HUNG, {"idle": round(now - self.last_pump, 3)})
        self.sent.append(m)
        return None

    def pop(self) -> Message | None:
        """The next message to dispatch: sent ones first (as GetMessage handles them), then posted ones in order."""
        if self.sent:
            return self.sent.popleft()
        if self.posted:
            return self.posted.popleft()
        return None

    def __len__(self) -> int:
        return len(self.sent) + len(self.posted)

    def drop_connection(self, conn: Any) -> None:
        """A sender went away: its waiting sends need no answer (its posts still count)."""
        self.sent = deque(m for m in self.sent if m.conn is not conn)

    @staticmethod
    def finish(m: Message, result: Any = None, error: BaseException | None = None) -> bytes | None:
        """The reply to a sent message once its handler returned (None for posted ones)."""
        if m.posted:
            return None
        if error is not None:
            return encode_reply(m.req_id, ERROR, error_payload(error))
        return encode_reply(m.req_id, OK, result)


class SenderCore:
    """A sender's request ids; turns a REPLY frame into a result or the right error."""

    def __init__(self) -> None:
        self._next = 0

    def next_id(self) -> int:
        self._next = (self._next + 1) & 0xFFFFFFFF or 1
        return self._next

    @staticmethod
    def reply_id(frame: bytes) -> int:
        kind, status, req_id, *_ = parse_header(frame)
        if kind != REPLY:
            raise ProtocolError(f"a window answered with frame kind {kind}, not a reply")
        if status == BAD_FRAME:
            SenderCore.result(frame, "")  # raises ProtocolError: the window hangs up after this
        return req_id

    @staticmethod
    def result(frame: bytes, window: str) -> Any:
        _, status, _, _, _, _, body = parse_header(frame)
        try:
            payload = json.loads(bytes(body)) if len(body) else None
        except (ValueError, RecursionError):  # junk, or nested past the interpreter's limit
            raise ProtocolError(f"window {window!r} sent a reply that is not JSON") from None
        if status == OK:
            return payload
        info = payload if isinstance(payload, dict) else {}
        if status == ERROR:
            raise RemoteError(str(info.get("type", "Exception")), str(info.get("message", "")),
                              str(info.get("traceback", "")))
        if status == FULL:
            raise QueueFull(f"the message queue of window {window!r} is full "
                            f"({info.get('limit')} posted messages waiting); the post was not queued")
        if status == HUNG:
            raise Timeout(f"window {window!r} is hung: its owner has not pumped messages for "
                          f"{info.get('idle')} s (abort_if_hung=True)")
        if status == BAD_FRAME:
            raise ProtocolError(f"window {window!r} could not parse our frame: {info.get('message')}")
        if status == REFUSED:
            raise PermissionDenied(f"window {window!r} refused the message: {info.get('message')}")
        raise ProtocolError(f"window {window!r} sent an unknown reply status {status}")


class QueueFull(InterprocError):
    """PostMessage to a full queue (ERROR_NOT_ENOUGH_QUOTA): the message was not queued."""


def missing_window(name: str) -> NotFound:
    return NotFound(f"no window named {name!r} (none of this user's processes has it open)")
