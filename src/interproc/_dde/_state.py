"""What the blocking and the asyncio DDE servers share: one :class:`ServerState`.

The item store, the shared-memory publishers of local hot links, the index of
conversations that take an item over their socket, ``set()`` and the rules of
poke and execute live here once; the drivers (``_server.py`` with threads,
``_aio.py`` with tasks) only move frames and say how to wake a conversation's
writer (:meth:`ServerState._notify`).
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable

from .._errors import HandleClosed, InterprocError, Timeout
from .._naming import Scope, validate_name
from .._messages._names import endpoint_names, endpoint_path
from ..shm import Publisher
from ._protocol import SYSTEM, TEXT, Execute, Poke, Store, decode_value, encode_sample, encode_value

KIND = "dde"
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
    return endpoint_path(KIND, service, "DDE service name", scope)


def service_names(scope: Scope = "user") -> list[str]:
    return endpoint_names(KIND, scope)


def _check_key(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"a DDE {what} is a non-empty str, got {value!r}")
    return value


def admitted(ch: Any, scope: Scope) -> bool:
    """May this connection hold a conversation?  In the user scope, only this user's processes."""
    creds = getattr(ch, "peer_credentials", None)
    return scope != "user" or creds is None or creds.uid == os.getuid()


class ServerState:
    """A DDE service's data and rules, without I/O (but the shared-memory publish)."""

    #: ``on_poke(topic, item, value)``: accept a poke (the value is then stored and advised);
    #: return False to refuse it.  Without a handler every poke is refused.
    on_poke: Callable[[str, str, Any], Any] | None
    #: ``on_execute(topic, command) -> result``; without a handler every execute is refused.
    on_execute: Callable[[str, str], Any] | None

    def __init__(self, service: str, scope: Scope) -> None:
        self.service = validate_name(service, "DDE service name")
        self.scope: Scope = scope
        self._store = Store(service)
        self._lock = threading.Lock()  # the asyncio server takes it too: uncontended, it is cheap
        self._convs: set[Any] = set()
        self._pubs: dict[tuple[str, str], Publisher] = {}
        self._hot: dict[tuple[str, str], Callable[..., None]] = {}  # (topic, item) -> its publisher's send
        #: (topic, item) -> the conversations with a socket link on it
        self._watchers: dict[tuple[str, str], set[Any]] = {}
        #: (topic, item) -> (its topic's items, its publisher's send) for items that only local
        #: hot links take (no socket watcher, no NATS bucket): set()'s shortcut.  Cleared
        #: whenever the watchers or the publishers change (lock held).
        self._only_shm: dict[tuple[str, str], tuple[dict[str, tuple[str, str]], Callable[..., None]]] = {}
        #: conversations ended because the client sent a frame that does not parse
        self.protocol_errors = 0
        self.on_poke = None
        self.on_execute = None
        self._closed = False
        self._nats: Any = None  # host="nats://...": the items also live in a JetStream bucket (._nats_host)

    def _notify(self, conv: Any) -> None:
        """Wake ``conv``'s writer: it has a frame to send (called with the lock held)."""
        raise NotImplementedError

    # -- data ---------------------------------------------------------------
    def set(self, topic: str, item: str, value: str | bytes, *, format: str | None = None) -> None:
        """Set an item (creating its topic) and advise every link on it; never waits for a client."""
        # The hot path of every hot link, kept to a few dict operations and one shared-memory
        # publish (which reaches every local client at once): names are checked only the first
        # time an item is set, and only conversations that take this item over their socket
        # are visited.
        key = (topic, item)
        if value.__class__ is str and format is None:
            wire = (TEXT, value)
            try:
                fast = self._only_shm.get(key)
            except TypeError:
                fast = None  # an unhashable name: the general path says what is wrong
            if fast is not None:
                # The fan-out's hot path: the value stored and published, nothing else to tell.
                items, send = fast
                sample = _TEXT_SAMPLE + value.encode()
                with self._lock:
                    if self._only_shm.get(key) is fast and not self._closed:  # still so (no watcher came)
                        items[item] = wire
                        try:
                            send(sample if len(sample) <= FAST_SLOT_SIZE else b"", timeout=0)
                        except Timeout:
                            pass  # a reader that is not ours holds a slot
                        return
        else:
            wire = encode_value(value, format)
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
                        self._notify(conv)
            if self._nats is not None:
                self._nats.changed(topic, item, wire)
            elif send is not None and not convs and item.__class__ is str:
                self._only_shm[key] = (items, send)

    def _new_item(self, topic: str, item: str) -> dict[str, tuple[str, str]]:
        """Check the names of an item set for the first time; its topic's items (lock held)."""
        _check_key(topic, "topic")
        _check_key(item, "item")
        if topic == SYSTEM:
            raise ValueError("the System topic is the server's own; choose another topic name")
        return self._store.topics.setdefault(topic, {})

    def _fast_path(self, topic: str, item: str) -> str | None:
        """The publisher of (topic, item) for local hot links (called with the lock held: the
        blocking driver feeds frames to the protocol under it; asyncio has one thread)."""
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

    def _hot_seq(self, topic: str, item: str) -> int | None:
        """Samples published for (topic, item) so far, if it has a publisher (lock held)."""
        pub = self._pubs.get((topic, item))
        return None if pub is None else pub.published

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

    # -- conversations ------------------------------------------------------------
    def rewatch(self, conv: Any) -> None:
        """Re-index ``conv`` under the items it takes over its socket (lock held).  ``conv``
        has ``proto`` (a ServerConversation), ``watched`` (its keys now) and ``closed``."""
        index = self._watchers
        topic = conv.proto.topic or ""
        now = frozenset((topic, item) for item in conv.proto.watching) if not conv.closed else frozenset()
        for key in conv.watched - now:
            convs = index.get(key)
            if convs is not None:
                convs.discard(conv)
                if not convs:
                    del index[key]
        for key in now - conv.watched:
            index.setdefault(key, set()).add(conv)
        if now != conv.watched:
            self._only_shm.clear()  # set() tells socket watchers again
        conv.watched, conv.watching = now, conv.proto.watching

    def handler_for(self, event: Poke | Execute, topic: str) -> tuple[Callable[..., Any] | None, str]:
        """(the handler to call, or None and why the event is refused)."""
        is_poke = isinstance(event, Poke)
        handler = self.on_poke if is_poke else self.on_execute
        if handler is None:
            what = "poke" if is_poke else "execute"
            return None, f"service {self.service!r} accepts no {what} (it has no on_{what} handler)"
        if is_poke and topic == SYSTEM:
            return None, "the System topic cannot be poked"
        return handler, ""

    @staticmethod
    def call_handler(handler: Callable[..., Any], event: Poke | Execute, topic: str) -> Any:
        """Run a poke or execute handler (the asyncio driver awaits what it returns)."""
        if isinstance(event, Poke):
            return handler(topic, event.item, event.value)
        return handler(topic, event.command)

    def after_handler(self, event: Poke | Execute, topic: str, out: Any) -> tuple[str, Any]:
        """(refusal, result) once the handler returned ``out``; an accepted poke is stored."""
        if isinstance(event, Poke):
            if out is False:
                return f"the server refused the poke of {event.item!r}", None
            self.set(topic, event.item, event.value, format=event.format)
            return "", None
        return "", out

    def _close_pubs(self) -> None:
        with self._lock:
            pubs, self._pubs, self._hot = list(self._pubs.values()), {}, {}
            self._only_shm.clear()
        for pub in pubs:
            pub.close()  # local hot-link subscribers drain what was published, then see ChannelClosed
