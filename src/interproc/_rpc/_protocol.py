"""JSON-RPC 2.0 without I/O: messages in, events out; calls and answers in, bytes out.

One :class:`Protocol` per connection, on either side.  It is symmetric: both
ends may send requests (so a server can call back into its client) and both
answer the requests they receive.  It holds no socket, clock or thread, so
the blocking driver, the asyncio driver, the newline-delimited interop server
and the distributed-objects layer all share it::

    proto = Protocol()
    rid, data = proto.request("add", (1, 2))       # -> send data
    for ev in proto.receive(reply_bytes):          # <- bytes of one message
        if isinstance(ev, Result): ...             # ev.id == rid, ev.value == 3
        elif isinstance(ev, Failure): ...          # ev.error: RemoteError (.code)
        elif isinstance(ev, Call):                 # the peer calls us
            data = proto.reply(ev, value)          # None: notification / batch not complete
        elif isinstance(ev, Send): ...             # send ev.data (errors for bad input, hello)

Wire: JSON-RPC 2.0 objects (https://www.jsonrpc.org/specification), one per
message, batches as arrays.  Between interproc peers the client may call
``rpc.hello`` first (``rpc.`` names are reserved by the specification for such
extensions) to agree on a faster codec; msgpack carries the same objects.  A
message's codec is recognised from its first byte (JSON texts start with
``{``, ``[`` or blank space, never a msgpack map or array byte), so a switch
needs no ordering between the two directions.

Codec choice, measured on this machine (one request / one reply object,
encode + decode, microseconds): stdlib json 3.7 + 3.3, msgpack 0.37 + 0.69,
msgspec.msgpack 0.16 + 0.32, msgspec.json 0.22 + 0.35; a 5 kB reply: msgpack
24 + 29, msgspec.msgpack 7 + 24.  So the binary codec is msgpack on the
wire, encoded by msgspec when it is installed (else by the msgpack package),
and JSON itself goes through msgspec.json when it is there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .._errors import RemoteError

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000  # an exception raised by the called method

MESSAGES = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid Request",
    METHOD_NOT_FOUND: "Method not found",
    INVALID_PARAMS: "Invalid params",
    INTERNAL_ERROR: "Internal error",
    SERVER_ERROR: "Server error",
}
#: remote_type of a RemoteError whose error object names no type
CODE_NAMES = {
    PARSE_ERROR: "ParseError",
    INVALID_REQUEST: "InvalidRequest",
    METHOD_NOT_FOUND: "MethodNotFound",
    INVALID_PARAMS: "InvalidParams",
    INTERNAL_ERROR: "InternalError",
}
HELLO = "rpc.hello"


class Fault(Exception):
    """Raised inside dispatch to answer with a specific JSON-RPC error code."""

    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(detail or MESSAGES.get(code, "error"))
        self.code, self.detail = code, detail


# -- codecs ------------------------------------------------------------------
def _codecs() -> dict[str, tuple[Callable[[Any], bytes], Callable[[bytes], Any], tuple[type, ...]]]:
    found: dict[str, tuple[Callable[[Any], bytes], Callable[[bytes], Any], tuple[type, ...]]] = {}
    try:
        import msgspec

        found["json"] = (msgspec.json.Encoder().encode, msgspec.json.Decoder().decode, (msgspec.DecodeError,))
        found["msgpack"] = (msgspec.msgpack.Encoder().encode, msgspec.msgpack.Decoder().decode,
                            (msgspec.DecodeError,))
        return found
    except ImportError:
        pass
    found["json"] = (lambda o: json.dumps(o, separators=(",", ":"), ensure_ascii=False).encode(),
                     json.loads, (ValueError, UnicodeDecodeError))
    try:
        import msgpack  # type: ignore[import-untyped]

        def unpack(data: bytes) -> Any:
            return msgpack.unpackb(data, raw=False, strict_map_key=False)

        # packb, not a shared Packer: a Packer keeps a buffer and is not thread-safe.
        found["msgpack"] = (lambda o: msgpack.packb(o, use_bin_type=True), unpack,
                            (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError))
    except ImportError:
        pass
    return found


CODECS = _codecs()
#: preference order of the codecs this process can speak
AVAILABLE: tuple[str, ...] = tuple(c for c in ("msgpack", "json") if c in CODECS)
_JSON_START = frozenset(b"{[ \t\r\n")
_MISSING: Any = object()


_JSON_LOADS = CODECS["json"][1]
_MSGPACK_LOADS = CODECS["msgpack"][1] if "msgpack" in CODECS else _JSON_LOADS


def decode(data: bytes) -> Any:
    """Decode one message in either codec (told apart by its first byte)."""
    if not data:
        raise ValueError("empty message")
    try:
        return (_JSON_LOADS if data[0] in _JSON_START else _MSGPACK_LOADS)(data)
    except Exception as exc:  # each decoder has its own errors (msgpack several) on junk
        raise ValueError(str(exc)) from None


# -- events --------------------------------------------------------------------
@dataclass(eq=False)
class _Batch:
    slots: list[Any]
    waiting: int


class Call:
    """The peer calls ``method``; answer with ``reply``/``fail`` unless ``notification``."""

    # A plain class with slots, not a dataclass: one is made per call received,
    # and this is the cheapest object Python builds.
    __slots__ = ("id", "method", "args", "kwargs", "notification", "batch", "slot")

    def __init__(self, id: Any, method: str, args: list[Any], kwargs: dict[str, Any], notification: bool = False,
                 batch: _Batch | None = None, slot: int = -1) -> None:
        self.id, self.method, self.args, self.kwargs = id, method, args, kwargs
        self.notification, self.batch, self.slot = notification, batch, slot

    def __repr__(self) -> str:
        return (f"Call(id={self.id!r}, method={self.method!r}, args={self.args!r}, kwargs={self.kwargs!r}, "
                f"notification={self.notification!r})")


class Result:
    """The reply to our request ``id``."""

    __slots__ = ("id", "value")

    def __init__(self, id: Any, value: Any) -> None:
        self.id, self.value = id, value

    def __repr__(self) -> str:
        return f"Result(id={self.id!r}, value={self.value!r})"


@dataclass(eq=False)
class Failure:
    """Our request ``id`` failed remotely (``id`` None: the peer could not read something we sent)."""

    id: Any
    error: RemoteError


@dataclass(eq=False)
class Send:
    """Bytes the driver must send as they are (error answers to bad input, the hello answer)."""

    data: bytes


Event = Call | Result | Failure | Send


def error_object(code: int, message: str | None = None, *, type_name: str = "", traceback: str = "") -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message if message is not None else MESSAGES.get(code, "error")}
    data = {k: v for k, v in (("type", type_name), ("traceback", traceback)) if v}
    if data:
        err["data"] = data
    return err


def remote_error(err: Any) -> RemoteError:
    """A RemoteError from a JSON-RPC error object (``.code`` and ``.data`` kept)."""
    if not isinstance(err, dict):
        err = {"code": INTERNAL_ERROR, "message": f"malformed error object: {err!r}"}
    code = err.get("code")
    data = err.get("data")
    type_name = data.get("type") if isinstance(data, dict) else None
    tb = data.get("traceback") if isinstance(data, dict) else None
    message = str(err.get("message", ""))
    detail = data.get("detail") if isinstance(data, dict) else None
    if detail:
        message = f"{message}: {detail}"
    fallback = CODE_NAMES.get(code, "RemoteError") if isinstance(code, int) else "RemoteError"
    exc = RemoteError(str(type_name or fallback), message, str(tb or ""))
    exc.code = code  # type: ignore[attr-defined]
    exc.data = data  # type: ignore[attr-defined]
    return exc


def _valid_id(value: Any) -> bool:
    return value is None or (isinstance(value, (str, int, float)) and not isinstance(value, bool))


class Protocol:
    """The JSON-RPC state of one connection (either end).  Not thread-safe: drivers lock."""

    def __init__(self, *, codec: str = "json", codecs: Sequence[str] = AVAILABLE) -> None:
        self.codecs = tuple(c for c in codecs if c in CODECS)  # what we accept in a hello
        self.set_codec(codec)
        self._next_id = 1
        self._pending: set[Any] = set()
        self._hello_id: Any = None

    # -- codec -------------------------------------------------------------------
    def set_codec(self, name: str) -> None:
        """The codec of what we send from now on."""
        if name not in CODECS:
            extra = "msgpack" if name == "msgpack" else name
            raise ValueError(f"RPC codec {name!r} is not available; pip install 'interproc[{extra}]'")
        self.codec = name
        self._dumps = CODECS[name][0]

    def hello(self) -> tuple[Any, bytes]:
        """A request offering our codecs; its Result switches us to the one the peer chose."""
        rid, data = self.request(HELLO, (), {"codecs": list(self.codecs), "version": 1})
        self._hello_id = rid
        return rid, data

    # -- our requests ----------------------------------------------------------
    def _new_id(self) -> int:
        rid = self._next_id
        self._next_id += 1
        return rid

    @staticmethod
    def _request(method: str, args: Sequence[Any], kwargs: dict[str, Any] | None, rid: Any) -> dict[str, Any]:
        if not isinstance(method, str):
            raise TypeError(f"method name must be a str, not {type(method).__name__}")
        if args and kwargs:
            raise TypeError("JSON-RPC 2.0 takes positional or named params, not both in one call")
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if kwargs:
            msg["params"] = kwargs
        elif args:
            msg["params"] = list(args)
        if rid is not None:
            msg["id"] = rid
        return msg

    def request(self, method: str, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None) -> tuple[int, bytes]:
        """A call expecting a reply: its id and the bytes to send."""
        rid = self._next_id
        self._next_id = rid + 1
        if type(method) is str and not kwargs:  # the common case, built inline
            msg = {"jsonrpc": "2.0", "method": method, "params": list(args), "id": rid} if args else \
                {"jsonrpc": "2.0", "method": method, "id": rid}
        else:
            msg = self._request(method, args, kwargs, rid)
        data = self._dumps(msg)
        self._pending.add(rid)
        return rid, data

    def notification(self, method: str, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None) -> bytes:
        """A call that gets no reply at all."""
        msg = self._request(method, args, kwargs, None)
        return self._dumps(msg)

    def batch(self, calls: Sequence[tuple[str, Sequence[Any], dict[str, Any] | None, bool]]) -> tuple[list[Any], bytes]:
        """Several ``(method, args, kwargs, notification)`` in one message: ids (None for
        notifications) and the bytes."""
        if not calls:
            raise ValueError("an empty batch cannot be sent (the peer would answer Invalid Request)")
        ids: list[Any] = [None if note else self._new_id() for (_, _, _, note) in calls]
        data = self._dumps([self._request(m, a, k, rid) for (m, a, k, _), rid in zip(calls, ids)])
        self._pending.update(i for i in ids if i is not None)
        return ids, data

    def cancel(self, rid: Any) -> None:
        """Forget request ``rid``: a reply arriving later is discarded."""
        self._pending.discard(rid)

    def pending(self) -> set[Any]:
        return set(self._pending)

    def abandon(self) -> list[Any]:
        """The connection is gone: forget and return every pending id."""
        ids = list(self._pending)
        self._pending.clear()
        return ids

    # -- incoming ------------------------------------------------------------------
    def plain_result(self, data: bytes) -> tuple[int, Any] | None:
        """``(id, result)`` if ``data`` is a plain success reply to one of our pending
        requests (the id is then no longer pending), else None: hand it to ``receive``.
        The caller's fast path: one decode and a few tests, no event objects."""
        try:
            msg = (_JSON_LOADS if data[0] in _JSON_START else _MSGPACK_LOADS)(data)
        except Exception:
            return None
        if type(msg) is dict and "result" in msg and "method" not in msg and "error" not in msg:
            rid = msg.get("id")
            if type(rid) is int and rid in self._pending and rid != self._hello_id:
                self._pending.discard(rid)
                return rid, msg["result"]
        return None

    def receive(self, data: bytes) -> list[Event]:
        """Events for one received message."""
        try:
            msg = decode(data)
        except ValueError:
            return [Send(self._dumps(self._error_msg(None, PARSE_ERROR)))]
        if type(msg) is dict:
            method = msg.get("method", _MISSING)
            if method is _MISSING:  # the common case on the calling side: one reply
                ev = self._response(msg) if ("result" in msg or "error" in msg) else self._one(msg, None, -1)
                return [] if ev is None else [ev]
            # The common case on the answering side: one well-formed request with
            # positional params, checked here with no more than a few type tests.
            params = msg.get("params", _MISSING)
            rid = msg.get("id", _MISSING)
            if (type(method) is str and msg.get("jsonrpc") == "2.0" and method != HELLO
                    and (params is _MISSING or type(params) is list)
                    and (type(rid) is int or type(rid) is str or rid is _MISSING)):
                note = rid is _MISSING
                return [Call(None if note else rid, method, [] if params is _MISSING else params, {}, note)]
        if isinstance(msg, list):
            if not msg:
                return [Send(self._dumps(self._error_msg(None, INVALID_REQUEST)))]
            batch = _Batch([None] * len(msg), 0)
            events: list[Event] = []
            for i, item in enumerate(msg):
                ev = self._one(item, batch, i)
                if ev is not None:
                    events.append(ev)
            # Calls still to be answered: the batch answer goes out with the last one.
            batch.waiting = sum(1 for e in events if isinstance(e, Call) and not e.notification)
            if batch.waiting == 0:
                answers = [s for s in batch.slots if s is not None]
                if answers:
                    events.append(Send(self._dumps(answers)))
            return events
        ev = self._one(msg, None, -1)
        return [] if ev is None else [ev]

    def _error_msg(self, rid: Any, code: int, message: str | None = None, **data: str) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "error": error_object(code, message, **data), "id": rid}

    def _one(self, msg: Any, batch: _Batch | None, slot: int) -> Event | None:
        if isinstance(msg, dict) and "method" not in msg and ("result" in msg or "error" in msg):
            return self._response(msg)
        invalid = None
        if not isinstance(msg, dict) or msg.get("jsonrpc") != "2.0" or not isinstance(msg.get("method"), str):
            invalid = "not a JSON-RPC 2.0 request object"
        elif "id" in msg and not _valid_id(msg["id"]):
            invalid = "id must be a string, a number or null"
        elif "params" in msg and not isinstance(msg["params"], (list, dict)):
            invalid = "params must be an array or an object"
        if invalid is not None:
            err = self._error_msg(None, INVALID_REQUEST)
            if batch is None:
                return Send(self._dumps(err))
            batch.slots[slot] = err
            return None
        params = msg.get("params", ())
        args, kwargs = (list(params), {}) if isinstance(params, list) else ([], dict(params))
        note = "id" not in msg
        call = Call(msg.get("id"), msg["method"], args, kwargs, note, batch, slot)
        if call.method == HELLO and not note:
            return self._answer_hello(call)
        return call

    def _answer_hello(self, call: Call) -> Event | None:
        offered = call.kwargs.get("codecs") if call.kwargs else None
        chosen = next((c for c in (offered or []) if c in self.codecs), "json")
        data = self.reply(call, {"codec": chosen, "version": 1})
        self.set_codec(chosen)  # after the answer, which the peer reads in the old codec
        return None if data is None else Send(data)

    def _response(self, msg: dict[str, Any]) -> Event | None:
        rid = msg.get("id")
        if rid is None and "error" in msg:
            return Failure(None, remote_error(msg["error"]))
        if not _valid_id(rid) or rid not in self._pending:
            return None  # cancelled or timed out (or an id no request has): discarded
        self._pending.discard(rid)
        if "error" in msg:
            return Failure(rid, remote_error(msg["error"]))
        if rid == self._hello_id:
            self._hello_id = None
            value = msg.get("result")
            chosen = value.get("codec") if isinstance(value, dict) else None
            if chosen in CODECS:
                self.set_codec(chosen)
        return Result(rid, msg.get("result"))

    # -- answering the peer's calls -----------------------------------------------
    def _finish(self, call: Call, answer: dict[str, Any]) -> bytes | None:
        if call.notification:
            return None
        batch = call.batch
        if batch is None:
            return self._dumps(answer)
        batch.slots[call.slot] = answer
        batch.waiting -= 1
        if batch.waiting > 0:
            return None
        return self._dumps([s for s in batch.slots if s is not None])

    def reply(self, call: Call, value: Any) -> bytes | None:
        """The answer to ``call`` (None: nothing to send now)."""
        if call.notification:
            return None
        answer = {"jsonrpc": "2.0", "result": value, "id": call.id}
        if call.batch is None:
            try:
                return self._dumps(answer)
            except (TypeError, ValueError, OverflowError) as exc:
                return self.fail(call, exc, code=INTERNAL_ERROR,
                                 message=f"the result cannot be encoded as {self.codec}: {exc}")
        try:
            self._dumps(value)  # the batch is encoded later: find an unencodable result now
        except (TypeError, ValueError, OverflowError) as exc:
            return self.fail(call, exc, code=INTERNAL_ERROR,
                             message=f"the result cannot be encoded as {self.codec}: {exc}")
        return self._finish(call, answer)

    def fail(self, call: Call, exc: BaseException, traceback: str = "", *, code: int | None = None,
             message: str | None = None) -> bytes | None:
        """The error answer to ``call`` for ``exc`` (a :class:`Fault` carries its own code)."""
        if isinstance(exc, Fault):
            code = exc.code if code is None else code
            err = error_object(code, MESSAGES.get(code), type_name=CODE_NAMES.get(code, ""))
            if exc.detail:
                err.setdefault("data", {})["detail"] = exc.detail
        else:
            code = SERVER_ERROR if code is None else code
            err = error_object(code, str(exc) if message is None else message,
                               type_name=type(exc).__name__, traceback=traceback)
        return self._finish(call, {"jsonrpc": "2.0", "error": err, "id": call.id})
