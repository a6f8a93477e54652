"""The blocking DDE server driver: threads that move frames for :class:`ServerConversation`.

Each conversation has a reader thread (frames in; poke and execute handlers
run here) and a writer thread (frames out).  ``set()`` only updates state
under the server's lock and wakes writers, so a client that reads slowly
blocks nothing but its own writer, while its hot links keep only the newest
value (or, acknowledged, queue every value).
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable

import interproc

from .._errors import HandleClosed, InterprocError, ProtocolError, Timeout
from .._naming import Scope, object_path, runtime_dir, validate_name
from .. import _registry
from .._messages._names import collect_endpoint_sockets, list_endpoint_sockets
from ..shm import Publisher
from ._protocol import SYSTEM, TEXT, Execute, Poke, ServerConversation, Store, decode_value, dump, encode_sample, encode_value

KIND = "dde"
_SUFFIX = ".sock"
#: Shared-memory hot links: one publisher per advised item, values up to this size inline
#: (a bigger one is announced empty and the client requests it), this many in flight.
#: Many small slots rather than few big ones: DDE values are short, and the ring is what a
#: reader that lost its CPU for a while catches up from (zmq's high-water mark is 1000
#: messages plus the socket buffers); about 1.1 MiB per advised item.
FAST_SLOT_SIZE = 512
FAST_SLOTS = 2048
FAST_MAX_CLIENTS = 64
_TEXT_SAMPLE = TEXT.encode() + b"\0"


def service_path(service: str, scope: Scope = "user") -> str:
    return object_path(KIND, validate_name(service, "DDE service name"), scope, _SUFFIX)


def service_names(scope: Scope = "user") -> list[str]:
    prefix = KIND + "."
    try:
        files = os.listdir(runtime_dir(scope))
    except OSError:
        return []
    return sorted(f[len(prefix) : -len(_SUFFIX)] for f in files if f.startswith(prefix) and f.endswith(_SUFFIX))


def _check_key(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"a DDE {what} is a non-empty str, got {value!r}")
    return value


class _Conv:
    def __init__(self, server: "Server", ch: Any) -> None:
        self.server = server
        self.ch = ch
        self.proto = ServerConversation(server._store)
        if getattr(ch, "peer_credentials", None) is not None:  # a local client may take hot links from shm
            self.proto.fast_path = server._fast_path
        self.cond = threading.Condition(server._lock)
        self.closed = False
        self.watched: frozenset[tuple[str, str]] = frozenset()

    def run(self) -> None:
        """The conversation, in the thread ``interproc.serve`` gave it: frames in (poke and
        execute handlers run here); a writer thread of its own moves frames out."""
        writer = threading.Thread(target=self._write_loop, daemon=True,
                                  name=f"interproc dde {self.server.service} writer")
        writer.start()
        try:
            self._read_loop()
        finally:
            self.close()
            writer.join(timeout=2)

    def _read_loop(self) -> None:
        try:
            while True:
                frame = self.ch.recv()
                with self.cond:
                    events = self.proto.receive(frame)
                    if self.proto.watching is not self._watching:
                        self._rewatch()
                    self.cond.notify()
                for event in events:
                    self._handle(event)
        except ProtocolError as exc:
            # tell the client why before hanging up (this conversation only; the server goes on)
            self.server.protocol_errors += 1
            try:
                self.ch.send(dump({"op": "error", "error": "ProtocolError", "message": str(exc)}), timeout=1)
            except Exception:
                pass
        except Exception:
            pass  # the client left or died: end this conversation only

    _watching: frozenset[str] = frozenset()

    def _rewatch(self) -> None:
        """Re-index this conversation under the items it takes over the socket (lock held)."""
        index = self.server._watchers
        topic = self.proto.topic or ""
        now = frozenset((topic, item) for item in self.proto.watching) if not self.closed else frozenset()
        for key in self.watched - now:
            convs = index.get(key)
            if convs is not None:
                convs.discard(self)
                if not convs:
                    del index[key]
        for key in now - self.watched:
            index.setdefault(key, set()).add(self)
        self.watched, self._watching = now, self.proto.watching

    def _handle(self, event: Poke | Execute) -> None:
        srv, topic = self.server, self.proto.topic or ""
        outcome: dict[str, Any] = {}
        handler: Callable[..., Any] | None = srv.on_poke if isinstance(event, Poke) else srv.on_execute
        if handler is None:
            what = "poke" if isinstance(event, Poke) else "execute"
            outcome["refused"] = f"service {srv.service!r} accepts no {what} (it has no on_{what} handler)"
        elif isinstance(event, Poke) and topic == SYSTEM:
            outcome["refused"] = "the System topic cannot be poked"
        else:
            try:
                if isinstance(event, Poke):
                    if handler(topic, event.item, event.value) is False:
                        outcome["refused"] = f"the server refused the poke of {event.item!r}"
                    else:
                        srv.set(topic, event.item, event.value, format=event.format)
                else:
                    outcome["result"] = handler(topic, event.command)
            except Exception as exc:
                outcome["error"] = exc
        with self.cond:
            self.proto.answer(event.id, outcome.get("error"), refused=outcome.get("refused", ""),
                              result=outcome.get("result"))
            self.cond.notify()

    def _write_loop(self) -> None:
        try:
            while True:
                with self.cond:
                    while not self.closed and (frame := self.proto.next_frame()) is None:
                        self.cond.wait()
                    if self.closed:
                        return
                self.ch.send(frame)
        except Exception:
            self.close()

    def close(self) -> None:
        with self.cond:
            if self.closed:
                return
            self.closed = True
            self._rewatch()
            self.cond.notify_all()
            self.server._convs.discard(self)
        self.ch.close()


class Server:
    """A DDE service: topics of items, advise links, optional poke and execute handlers."""

    #: ``on_poke(topic, item, value)``: accept a poke (the value is then stored and advised);
    #: return False to refuse it.  Without a handler every poke is refused.
    on_poke: Callable[[str, str, Any], Any] | None
    #: ``on_execute(topic, command) -> result``; without a handler every execute is refused.
    on_execute: Callable[[str, str], Any] | None

    def __init__(self, service: str, *, host: str | None = None, authkey: bytes | None = None,
                 scope: Scope = "user", **listen_options: Any) -> None:
        self.service = validate_name(service, "DDE service name")
        self.scope: Scope = scope
        self._store = Store(service)
        self._lock = threading.Lock()
        self._convs: set[_Conv] = set()
        self._pubs: dict[tuple[str, str], Publisher] = {}
        self._hot: dict[tuple[str, str], Callable[..., None]] = {}  # (topic, item) -> its publisher's send
        #: conversations ended because the client sent a frame that does not parse
        self.protocol_errors = 0
        self.on_poke = None
        self.on_execute = None
        self._closed = False
        self._serving: list[interproc.Server] = []
        self._stopped = threading.Event()
        #: (topic, item) -> the conversations with a socket link on it
        self._watchers: dict[tuple[str, str], set[_Conv]] = {}
        self._listeners = [interproc.listen(f"unix://{service_path(service, scope)}",
                                            mode=0o600 if scope == "user" else listen_options.get("mode", 0o660))]
        if host is not None:
            try:
                self._listeners.append(interproc.listen(host, authkey=authkey, **listen_options))
            except BaseException:
                self._listeners[0].close()
                raise
        #: where NetDDE clients connect (``host=``): the tcp:// address with its real port
        self.address = self._listeners[-1].address

    def __repr__(self) -> str:
        return f"<dde.Server {self.service!r}{' closed' if self._closed else ''}>"

    # -- data ---------------------------------------------------------------
    def set(self, topic: str, item: str, value: str | bytes, *, format: str | None = None) -> None:
        """Set an item (creating its topic) and advise every link on it; never waits for a client."""
        # The hot path of every hot link, kept to a few dict operations and one shared-memory
        # publish (which reaches every local client at once): names are checked only the first
        # time an item is set, and only conversations that take this item over their socket
        # are visited.
        if value.__class__ is str and format is None:
            wire = (TEXT, value)
        else:
            wire = encode_value(value, format)
        key = (topic, item)
        with self._lock:
            if self._closed:
                raise HandleClosed(f"DDE server {self.service!r} is closed")
            items = self._store.topics.get(topic) if topic.__class__ is str else None
            if items is None or item not in items:
                items = self._new_item(topic, item)
            items[item] = wire
            send = self._hot.get(key)
            if send is not None:
                if wire[0] == TEXT:
                    sample = _TEXT_SAMPLE + value.encode()  # type: ignore[union-attr]
                    if len(sample) > FAST_SLOT_SIZE:
                        sample = b""  # announced empty: clients request it
                else:
                    sample = encode_sample(wire, FAST_SLOT_SIZE, value)
                try:
                    send(sample, timeout=0)  # drop_oldest readers: never stalls
                except Timeout:
                    pass  # a reader that is not ours holds a slot: socket links still get it
            convs = self._watchers.get(key)
            if convs:
                for conv in convs:
                    if conv.proto.changed(topic, item, wire):
                        conv.cond.notify()

    def _new_item(self, topic: str, item: str) -> dict[str, tuple[str, str]]:
        """Check the names of an item set for the first time; its topic's items (lock held)."""
        _check_key(topic, "topic")
        _check_key(item, "item")
        if topic == SYSTEM:
            raise ValueError("the System topic is the server's own; choose another topic name")
        return self._store.topics.setdefault(topic, {})

    def _fast_path(self, topic: str, item: str) -> str | None:
        """The publisher of (topic, item) for local hot links (called with the lock held)."""
        pub = self._pubs.get((topic, item))
        if pub is None:
            try:
                pub = Publisher.create(f"ddehot.{os.getpid()}.{len(self._pubs)}.{os.urandom(4).hex()}",
                                       FAST_SLOT_SIZE, FAST_SLOTS, max_subscribers=FAST_MAX_CLIENTS, scope=self.scope)
            except (InterprocError, OSError):
                return None  # no shared memory to spare: the link goes over the socket
            self._pubs[(topic, item)] = pub
            self._hot[(topic, item)] = pub.send
        return pub.name

    def get(self, topic: str, item: str) -> str | bytes:
        with self._lock:
            got = self._store.get(topic, item)
        if got is None:
            raise KeyError(f"{topic}!{item}")
        return decode_value(*got)

    def add_topic(self, topic: str) -> None:
        """Make a topic exist (connectable) before it has items."""
        _check_key(topic, "topic")
        with self._lock:
            self._store.topics.setdefault(topic, {})

    @property
    def topics(self) -> list[str]:
        with self._lock:
            return [SYSTEM, *sorted(self._store.topics)]

    # -- serving --------------------------------------------------------------
    def start(self) -> "Server":
        """Serve in background threads (``interproc.serve``, one per listener); returns self."""
        with self._lock:
            if self._closed:
                raise HandleClosed(f"DDE server {self.service!r} is closed")
            if not self._serving:
                self._serving = [interproc.serve(lst, self._serve_one) for lst in self._listeners]
        return self

    def serve_forever(self) -> None:
        """Serve until ``close()`` (from a handler or another thread) or Ctrl-C."""
        self.start()
        try:
            while not self._stopped.wait(0.5):  # a slice, so that Ctrl-C gets through
                pass
        finally:
            self.close()

    def _serve_one(self, ch: Any) -> None:
        creds = getattr(ch, "peer_credentials", None)
        if self.scope == "user" and creds is not None and creds.uid != os.getuid():
            return  # another user's process cannot reach a user-scope service (serve closes ch)
        conv = _Conv(self, ch)
        with self._lock:
            if self._closed:
                return
            self._convs.add(conv)
        conv.run()

    @property
    def conversations(self) -> int:
        with self._lock:
            return len(self._convs)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop the service: every conversation ends (clients get ``ChannelClosed``)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            convs = list(self._convs)
        for conv in convs:
            conv.close()
        for srv in self._serving:
            srv.close(timeout=2)
        for lst in self._listeners:
            try:
                lst.close()
            except (InterprocError, OSError):
                pass
        with self._lock:
            pubs, self._pubs, self._hot = list(self._pubs.values()), {}, {}
        for pub in pubs:
            pub.close()  # local hot-link subscribers drain what was published, then see ChannelClosed
        self._stopped.set()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()


_registry.register(KIND, lambda: list_endpoint_sockets(KIND), lambda: collect_endpoint_sockets(KIND))
