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
import time
from typing import Any, Callable

import interproc

from .._errors import HandleClosed, InterprocError, ProtocolError, Timeout
from .._naming import Scope, object_path, runtime_dir, validate_name
from .. import _registry
from .._messages._names import collect_endpoint_sockets, list_endpoint_sockets
from ..shm import Publisher
from ._protocol import SYSTEM, Execute, Poke, ServerConversation, Store, decode_value, dump, encode_sample, encode_value

KIND = "dde"
_SUFFIX = ".sock"
_ACCEPT_SLICE = 0.25
#: Shared-memory hot links: one publisher per advised item, values up to this size inline
#: (a bigger one is announced empty and the client requests it), this many in flight.
FAST_SLOT_SIZE = 4096
FAST_SLOTS = 256
FAST_MAX_CLIENTS = 64


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

    def start(self) -> None:
        for target, what in ((self._read_loop, "reader"), (self._write_loop, "writer")):
            threading.Thread(target=target, daemon=True, name=f"interproc dde {self.server.service} {what}").start()

    def _read_loop(self) -> None:
        try:
            while True:
                frame = self.ch.recv()
                with self.cond:
                    events = self.proto.receive(frame)
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
        finally:
            self.close()

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
        #: conversations ended because the client sent a frame that does not parse
        self.protocol_errors = 0
        self.on_poke = None
        self.on_execute = None
        self._closed = False
        self._threads: list[threading.Thread] = []
        self._listeners = [interproc.listen(f"unix://{service_path(service, scope)}",
                                            mode=0o600 if scope == "user" else listen_options.get("mode", 0o660))]
        self._nats: Any = None  # host="nats://...": items in a JetStream bucket (._nats)
        if host is not None:
            try:
                if host.lower().startswith(("nats://", "tls://")):
                    from ._nats_host import NatsHost

                    self._nats = NatsHost(self, host, **listen_options)
                else:
                    self._listeners.append(interproc.listen(host, authkey=authkey, **listen_options))
            except BaseException:
                self._listeners[0].close()
                raise
        #: where NetDDE clients connect (``host=``): the tcp:// address with its real port
        self.address = host if self._nats is not None else self._listeners[-1].address

    def __repr__(self) -> str:
        return f"<dde.Server {self.service!r}{' closed' if self._closed else ''}>"

    # -- data ---------------------------------------------------------------
    def set(self, topic: str, item: str, value: str | bytes, *, format: str | None = None) -> None:
        """Set an item (creating its topic) and advise every link on it; never waits for a client."""
        if self._closed:
            raise HandleClosed(f"DDE server {self.service!r} is closed")
        _check_key(topic, "topic")
        _check_key(item, "item")
        if topic == SYSTEM:
            raise ValueError("the System topic is the server's own; choose another topic name")
        wire = encode_value(value, format)
        with self._lock:
            self._store.topics.setdefault(topic, {})[item] = wire
            pub = self._pubs.get((topic, item))
            if pub is not None:
                try:
                    pub.send(encode_sample(wire, FAST_SLOT_SIZE), timeout=0)  # drop_oldest readers never stall it
                except Timeout:
                    pass
            for conv in self._convs:
                if conv.proto.changed(topic, item, wire):
                    conv.cond.notify()
            if self._nats is not None:
                self._nats.changed(topic, item, wire)

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
        """Serve in background threads; returns self."""
        if self._nats is not None:
            self._nats.start()
        if not self._threads:
            for lst in self._listeners:
                t = threading.Thread(target=self._accept_loop, args=(lst,), daemon=True,
                                     name=f"interproc dde {self.service} accept")
                t.start()
                self._threads.append(t)
        return self

    def serve_forever(self) -> None:
        """Serve until ``close()`` (from a handler or another thread) or Ctrl-C."""
        self.start()
        try:
            while not self._closed:
                time.sleep(0.2)
        finally:
            self.close()

    def _accept_loop(self, lst: Any) -> None:
        while not self._closed:
            try:
                ch = lst.accept(timeout=_ACCEPT_SLICE)
            except Timeout:
                continue
            except (ProtocolError, interproc.PermissionDenied, interproc.ChannelClosed):
                continue  # a stranger, a wrong key, or a probe that left: keep serving the others
            except Exception:
                if self._closed:
                    return
                time.sleep(_ACCEPT_SLICE)
                continue
            creds = getattr(ch, "peer_credentials", None)
            if self.scope == "user" and creds is not None and creds.uid != os.getuid():
                ch.close()  # another user's process cannot reach a user-scope service
                continue
            conv = _Conv(self, ch)
            with self._lock:
                if self._closed:
                    ch.close()
                    return
                self._convs.add(conv)
            conv.start()

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
        for lst in self._listeners:
            try:
                lst.close()
            except (InterprocError, OSError):
                pass
        if self._nats is not None:
            self._nats.close()
        for conv in convs:
            conv.close()
        with self._lock:
            pubs, self._pubs = list(self._pubs.values()), {}
        for pub in pubs:
            pub.close()  # local hot-link subscribers drain what was published, then see ChannelClosed
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=2)

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()


_registry.register(KIND, lambda: list_endpoint_sockets(KIND), lambda: collect_endpoint_sockets(KIND))
