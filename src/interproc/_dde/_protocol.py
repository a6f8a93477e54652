"""DDE without I/O: the conversation wire format and both ends' state machines.

One channel carries one conversation (service + topic).  After interproc's
connection handshake every frame is one UTF-8 JSON object (docs/dde.md has
the whole wire, enough to write a client with a plain socket)::

    client -> server  {"id": n, "op": "initiate", "service": S, "topic": T}
                      {"id": n, "op": "request",  "item": I}
                      {"id": n, "op": "advise",   "item": I, "hot": bool, "ack": bool, "shm"?: true}
                      {"id": n, "op": "unadvise", "link": L}
                      {"id": n, "op": "poke",     "item": I, "format": F, "value": V}
                      {"id": n, "op": "execute",  "command": C}
                      {"op": "ack", "link": L}                 (acknowledged links only)
    server -> client  {"id": n, "ok": true, ...}  |  {"id": n, "ok": false, "error": E, "message": M}
                      {"op": "data", "link": L, "item": I, "format": F, "value": V, "seq": s, "dropped": d}
                      {"op": "changed", "link": L, "item": I, "seq": s, "dropped": d}      (warm links)

Values are text (format "TEXT") or bytes (any other format; base64 in
"value").  Flow control lives in :class:`ServerConversation`: a link without
``ack`` keeps only the newest unsent value (the final value always goes out,
superseded ones are counted in ``dropped``); a link with ``ack`` (XTYPF_ACKREQ)
queues every value and sends the next one only after the client's ``ack``.
"""

from __future__ import annotations

import base64
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .._errors import NotFound, PermissionDenied, ProtocolError, RemoteError

SYSTEM = "System"
SYS_ITEMS = ("Topics", "SysItems", "Formats", "Status", "TopicItemList")
ITEM_LIST = "TopicItemList"  # SZDDE_ITEM_ITEMLIST: on any topic, the items it holds
TEXT = "TEXT"
BINARY = "BINARY"
#: A frame bigger than this is not a DDE frame (values travel inside frames).
MAX_FRAME = 64 * 1024 * 1024

_ERRORS: dict[str, type[Exception]] = {"NotFound": NotFound, "PermissionDenied": PermissionDenied}


def encode_value(value: Any, fmt: str | None = None) -> tuple[str, str]:
    """(format, wire text) of a value: str is TEXT, bytes is BINARY or the given registered format."""
    if isinstance(value, str):
        if fmt not in (None, TEXT):
            raise TypeError(f"a str value has format {TEXT!r}; pass bytes for format {fmt!r}")
        return TEXT, value
    if isinstance(value, (bytes, bytearray, memoryview)):
        fmt = fmt or BINARY
        if fmt == TEXT or not isinstance(fmt, str) or not fmt:
            raise ValueError(f"bytes need a non-text format name, not {fmt!r}")
        return fmt, base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError(f"a DDE value is str or bytes, not {type(value).__name__}")


def decode_value(fmt: Any, text: Any) -> str | bytes:
    if not isinstance(fmt, str) or not isinstance(text, str):
        raise ProtocolError("a DDE value needs a string 'format' and a string 'value'")
    if fmt == TEXT:
        return text
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise ProtocolError(f"a {fmt!r} DDE value is not base64") from None


def dump(msg: dict) -> bytes:
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode()


def load(frame: bytes) -> dict:
    try:
        msg = json.loads(bytes(frame))
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError("a DDE frame is not UTF-8 JSON") from None
    except RecursionError:  # nested past the interpreter's limit: the peer's fault
        raise ProtocolError("a DDE frame is JSON nested too deeply") from None
    if not isinstance(msg, dict):
        raise ProtocolError("a DDE frame is not a JSON object")
    return msg


def _str(msg: dict, key: str) -> str:
    v = msg.get(key)
    if not isinstance(v, str) or not v:
        raise ProtocolError(f"a DDE {msg.get('op')!r} frame needs a non-empty string {key!r}")
    return v


def _int(msg: dict, key: str) -> int:
    v = msg.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**53:
        raise ProtocolError(f"a DDE {msg.get('op')!r} frame needs an integer {key!r}")
    return v


class Store:
    """A server's topics and items: ``{topic: {item: (format, wire text)}}`` (pure data)."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.topics: dict[str, dict[str, tuple[str, str]]] = {}

    def system(self, item: str) -> tuple[str, str] | None:
        table = {
            "Topics": "\t".join([SYSTEM, *sorted(self.topics)]),
            "SysItems": "\t".join(SYS_ITEMS),
            "Formats": "\t".join(sorted({TEXT, BINARY} | {f for t in self.topics.values() for f, _ in t.values()})),
            "Status": "Ready",
            ITEM_LIST: "\t".join(SYS_ITEMS),
        }
        return (TEXT, table[item]) if item in table else None

    def get(self, topic: str, item: str) -> tuple[str, str] | None:
        if topic == SYSTEM:
            return self.system(item)
        if item == ITEM_LIST:
            return TEXT, "\t".join(sorted(self.topics.get(topic, {})))
        return self.topics.get(topic, {}).get(item)


@dataclass
class _ServerLink:
    id: int
    item: str
    hot: bool
    ack: bool
    seq: int = 0
    pending: tuple[str, str] | None = None  # newest unsent value (no-ack links)
    dropped: int = 0
    queue: deque = field(default_factory=deque)  # every unsent value (ack links)
    awaiting_ack: bool = False
    shm: bool = False  # fed through a shared-memory publisher, not this socket


# events the server driver acts on
@dataclass
class Poke:
    id: int
    item: str
    value: str | bytes
    format: str


@dataclass
class Execute:
    id: int
    command: str


class ServerConversation:
    """The server's end of one conversation.  Frames in, events and frames out."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.topic: str | None = None
        self._out: deque[bytes] = deque()
        self._links: dict[int, _ServerLink] = {}
        self._next_link = 0
        self._turn = 0
        #: the driver's hook for local hot links: (topic, item) -> publisher segment name, or None
        self.fast_path: Any = lambda topic, item: None
        #: and (topic, item) -> how many samples its publisher has published, or None: a request
        #: reply carries it ("seq"), so that a local hot-link reader that fetched an oversized
        #: value skips the older samples still in its ring
        self.hot_seq: Any = lambda topic, item: None
        #: items of this topic with a link fed through this socket (not shared memory): the
        #: driver indexes conversations by them, so ``set()`` touches only those that listen
        self.watching: frozenset[str] = frozenset()

    def receive(self, frame: bytes) -> list[Poke | Execute]:
        """Take one frame; replies queue up for :meth:`next_frame`; poke/execute come back as events."""
        msg = load(frame)
        op = msg.get("op")
        if op == "ack":
            link = self._links.get(_int(msg, "link"))
            if link is not None:
                link.awaiting_ack = False
            return []
        rid = _int(msg, "id")
        if op == "initiate":
            if self.topic is not None:
                raise ProtocolError("a DDE conversation was initiated twice")
            service, topic = _str(msg, "service"), _str(msg, "topic")
            if service.casefold() != self.store.service.casefold():
                self._error(rid, "NotFound", f"this server is {self.store.service!r}, not {service!r}")
            elif topic != SYSTEM and topic not in self.store.topics:
                self._error(rid, "NotFound", f"service {self.store.service!r} has no topic {topic!r}")
            else:
                self.topic = topic
                self._reply(rid, service=self.store.service, topic=topic)
            return []
        if self.topic is None:
            raise ProtocolError(f"a DDE {op!r} frame came before 'initiate'")
        if op == "request":
            got = self.store.get(self.topic, _str(msg, "item"))
            if got is None:
                self._error(rid, "NotFound", f"topic {self.topic!r} has no item {msg['item']!r}")
            else:
                seq = self.hot_seq(self.topic, msg["item"])
                self._reply(rid, format=got[0], value=got[1], **({"seq": seq} if seq is not None else {}))
        elif op == "advise":
            hot, ack = msg.get("hot", True), msg.get("ack", False)
            if not isinstance(hot, bool) or not isinstance(ack, bool):
                raise ProtocolError("'hot' and 'ack' of a DDE advise are booleans")
            self._next_link += 1
            item = _str(msg, "item")
            shm = self.fast_path(self.topic, item) if msg.get("shm") is True and hot and not ack else None
            self._links[self._next_link] = _ServerLink(self._next_link, item, hot, ack, shm=shm is not None)
            self._rewatch()
            self._reply(rid, link=self._next_link, **({"shm": shm} if shm else {}))
        elif op == "unadvise":
            if self._links.pop(_int(msg, "link"), None) is None:
                self._error(rid, "NotFound", f"no advise link {msg['link']}")
            else:
                self._rewatch()
                self._reply(rid)
        elif op == "poke":
            return [Poke(rid, _str(msg, "item"), decode_value(msg.get("format"), msg.get("value")),
                         msg["format"])]
        elif op == "execute":
            command = msg.get("command")
            if not isinstance(command, str):
                raise ProtocolError("a DDE execute needs a string 'command'")
            return [Execute(rid, command)]
        else:
            raise ProtocolError(f"unknown DDE operation {op!r}")
        return []

    def _rewatch(self) -> None:
        self.watching = frozenset(link.item for link in self._links.values() if not link.shm)

    def _reply(self, rid: int, **fields: Any) -> None:
        self._out.append(dump({"id": rid, "ok": True, **fields}))

    def _error(self, rid: int, error: str, message: str, traceback: str = "") -> None:
        out = {"id": rid, "ok": False, "error": error, "message": message}
        if traceback:
            out["traceback"] = traceback
        self._out.append(dump(out))

    def answer(self, rid: int, error: BaseException | None = None, *, refused: str = "", result: Any = None) -> None:
        """The outcome of a Poke or Execute event."""
        if refused:
            self._error(rid, "PermissionDenied", refused)
        elif error is not None:
            import traceback as tb

            self._error(rid, type(error).__name__, str(error),
                        "".join(tb.format_exception(type(error), error, error.__traceback__)))
        else:
            self._reply(rid, result=result if isinstance(result, (str, int, float, bool, type(None))) else str(result))

    def changed(self, topic: str, item: str, value: tuple[str, str]) -> bool:
        """An item changed; True if this conversation now has something to send."""
        if topic != self.topic:
            return False
        touched = False
        for link in self._links.values():
            if link.item != item or link.shm:
                continue
            touched = True
            if link.ack:
                link.queue.append(value)
            else:
                if link.pending is not None:
                    link.dropped += 1  # superseded before it went out: the newest value wins
                link.pending = value
        return touched

    def next_frame(self) -> bytes | None:
        """The next frame to write: replies first, then advise updates, links taking turns."""
        if self._out:
            return self._out.popleft()
        links = list(self._links.values())
        for k in range(len(links)):
            link = links[(self._turn + k) % len(links)]
            value = None
            if link.ack and link.queue and not link.awaiting_ack:
                value, link.awaiting_ack = link.queue.popleft(), True
            elif not link.ack and link.pending is not None:
                value, link.pending = link.pending, None
            if value is None:
                continue
            self._turn = (self._turn + k + 1) % len(links)
            link.seq += 1
            msg: dict[str, Any] = {"op": "data" if link.hot else "changed", "link": link.id, "item": link.item,
                                   "seq": link.seq, "dropped": link.dropped}
            link.dropped = 0
            if link.hot:
                msg["format"], msg["value"] = value
            return dump(msg)
        return None


# -- the client's end -----------------------------------------------------------

@dataclass
class Reply:
    id: int
    ok: bool
    body: dict


@dataclass
class Update:
    link: int
    item: str
    value: str | bytes | None  # None on a warm link
    seq: int
    dropped: int


class LinkState:
    """A client's advise link without I/O: its counters and the updates waiting for its callback.

    Both client drivers subclass it (``AdviseLink``, ``AsyncAdviseLink``)."""

    def __init__(self, link_id: int, item: str, hot: bool, ack: bool, callback: Any) -> None:
        self.id, self.item, self.hot, self.ack = link_id, item, hot, ack
        self.callback = callback
        #: updates delivered to the callback, and updates superseded before delivery (never with ack)
        self.received = 0
        self.dropped = 0
        self.last_value: Any = None
        self.closed = False
        self._pending: deque[Update] = deque()

    def __repr__(self) -> str:
        kind = "hot" if self.hot else "warm"
        return f"<{type(self).__name__} {kind} {self.item!r} received={self.received} dropped={self.dropped}>"

    def call(self, update: Update) -> Any:
        """Run the callback for ``update`` (what it returns: the asyncio driver awaits it)."""
        if self.callback is None or self.closed:
            return None
        return self.callback(update.item, update.value) if self.hot else self.callback(update.item)


class Deliveries:
    """Updates waiting for callbacks, links taking turns; an unacknowledged link keeps only
    its newest update (the superseded ones add to ``link.dropped``)."""

    def __init__(self) -> None:
        self.ready: deque[LinkState] = deque()

    def offer(self, link: LinkState, event: Update) -> None:
        if not link.ack and link._pending:
            link.dropped += 1 + link._pending[-1].dropped  # the newest value wins
            link._pending.clear()
        link._pending.append(event)
        if link not in self.ready:
            self.ready.append(link)

    def take(self) -> tuple[LinkState, Update] | None:
        """The next (link, update) to deliver, counted as delivered; None when nothing waits."""
        while self.ready:
            link = self.ready.popleft()
            if not link._pending:
                continue
            update = link._pending.popleft()
            if link._pending:
                self.ready.append(link)
            link.received += 1
            link.dropped += update.dropped
            link.last_value = update.value
            return link, update
        return None


class ClientConversation:
    """The client's end: frames to send for each call, events from frames received."""

    def __init__(self, service: str, topic: str) -> None:
        self.service, self.topic = service, topic
        self._next = 0

    def _frame(self, op: str, **fields: Any) -> tuple[int, bytes]:
        self._next += 1
        return self._next, dump({"id": self._next, "op": op, **fields})

    def initiate(self) -> tuple[int, bytes]:
        return self._frame("initiate", service=self.service, topic=self.topic)

    def request(self, item: str) -> tuple[int, bytes]:
        return self._frame("request", item=item)

    def advise(self, item: str, hot: bool, ack: bool, shm: bool = False) -> tuple[int, bytes]:
        return self._frame("advise", item=item, hot=hot, ack=ack, **({"shm": True} if shm else {}))

    def unadvise(self, link: int) -> tuple[int, bytes]:
        return self._frame("unadvise", link=link)

    def poke(self, item: str, value: Any, fmt: str | None) -> tuple[int, bytes]:
        f, text = encode_value(value, fmt)
        return self._frame("poke", item=item, format=f, value=text)

    def execute(self, command: str) -> tuple[int, bytes]:
        if not isinstance(command, str):
            raise TypeError(f"a DDE command is a str, not {type(command).__name__}")
        return self._frame("execute", command=command)

    @staticmethod
    def ack(link: int) -> bytes:
        return dump({"op": "ack", "link": link})

    @staticmethod
    def receive(frame: bytes) -> Reply | Update:
        msg = load(frame)
        op = msg.get("op")
        if op in ("data", "changed"):
            value = decode_value(msg.get("format"), msg.get("value")) if op == "data" else None
            return Update(_int(msg, "link"), _str(msg, "item"), value, _int(msg, "seq"), _int(msg, "dropped"))
        if op == "error":
            raise ProtocolError(f"the DDE server ended the conversation: {msg.get('message')}")
        if op is not None:
            raise ProtocolError(f"unknown DDE server frame {op!r}")
        ok = msg.get("ok")
        if not isinstance(ok, bool):
            raise ProtocolError("a DDE reply needs a boolean 'ok'")
        return Reply(_int(msg, "id"), ok, msg)

    @staticmethod
    def raise_for(reply: Reply, what: str) -> None:
        if reply.ok:
            return
        error, message = str(reply.body.get("error", "Error")), str(reply.body.get("message", ""))
        cls = _ERRORS.get(error)
        if cls is not None:
            raise cls(f"{what}: {message}")
        raise RemoteError(error, message, str(reply.body.get("traceback", "")))


# -- hot links through shared memory (local clients that ask with "shm": true) ------
def encode_sample(value: tuple[str, str], slot_size: int, raw: Any = None) -> bytes:
    """A publisher sample: format, NUL, the raw value; or b"" when it does not fit (then request it).
    ``raw`` is the value as set, when the caller has it (saves decoding the wire text again)."""
    fmt, text = value
    if fmt == TEXT:
        data = text.encode()
    else:
        data = bytes(raw) if isinstance(raw, (bytes, bytearray, memoryview)) else base64.b64decode(text)
    if len(data) + len(fmt) >= slot_size:
        return b""
    return fmt.encode() + b"\0" + data


_TEXT_PREFIX = TEXT.encode() + b"\0"


def decode_sample(sample: bytes) -> tuple[str, str | bytes] | None:
    """(format, value) of a sample, or None for "too big: request the item"."""
    if sample.startswith(_TEXT_PREFIX):  # the common case first: no partition, one decode
        return TEXT, sample[len(_TEXT_PREFIX):].decode()
    if not sample:
        return None
    fmt, sep, raw = sample.partition(b"\0")
    if not sep:
        raise ProtocolError("a DDE shared-memory sample has no format")
    f = fmt.decode("utf-8", "replace")
    return f, (raw.decode() if f == TEXT else raw)
