"""The blocking DDE client driver: ``connect()`` -> :class:`Conversation`, advise links, ``services()``.

A reader thread takes frames off the channel: replies wake the waiting call,
updates go to a dispatcher thread that runs the callbacks.  So a callback may
itself call the conversation, and a slow callback never stalls replies.  A
link without ``ack`` keeps only its newest undelivered update (superseded ones
add to ``link.dropped``); an acknowledged link delivers every update and acks
each one after its callback returns, which is what paces the server.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Callable

import interproc

from .._errors import ChannelClosed, HandleClosed, InterprocError, NotFound, ProtocolError, Timeout
from .._naming import Scope
from ..shm import Subscriber
from ._protocol import SYSTEM, ClientConversation, Reply, Update, decode_sample, decode_value
from ._server import service_names, service_path

_UNSET: Any = object()


class AdviseLink:
    """A warm or hot link; ``close()`` ends it (unadvise)."""

    def __init__(self, conv: "Conversation", link_id: int, item: str, hot: bool, ack: bool,
                 callback: Callable[..., Any] | None) -> None:
        self.conversation, self.id, self.item, self.hot, self.ack = conv, link_id, item, hot, ack
        self.callback = callback
        #: updates delivered to the callback, and updates superseded before delivery (never with ack)
        self.received = 0
        self.dropped = 0
        self.last_value: Any = None
        self.closed = False
        self._pending: deque[Update] = deque()
        self._thread: threading.Thread | None = None  # the shared-memory reader of a local hot link

    def __repr__(self) -> str:
        kind = "hot" if self.hot else "warm"
        return f"<AdviseLink {kind} {self.item!r} received={self.received} dropped={self.dropped}>"

    def close(self, *, timeout: float | None = _UNSET) -> None:
        """Unadvise (XTYP_ADVSTOP).  Nothing to do if the conversation already ended."""
        if self.closed:
            return
        self.closed = True
        conv = self.conversation
        conv._links.pop(self.id, None)
        if not conv.closed:
            try:
                conv._call(conv._proto.unadvise(self.id), timeout)
            except (ChannelClosed, HandleClosed):
                pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)

    def __enter__(self) -> "AdviseLink":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Waiter:
    __slots__ = ("event", "reply")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reply: Reply | None = None


class Conversation:
    """A DDE conversation with one service and topic (DdeConnect's HCONV)."""

    def __init__(self, ch: Any, service: str, topic: str, timeout: float | None, *, local: bool = False) -> None:
        self._ch, self.service, self.topic, self.timeout = ch, service, topic, timeout
        #: on this machine: hot links without ack read the server's shared-memory publisher
        self.local = local
        self._proto = ClientConversation(service, topic)
        self._send_lock = threading.Lock()
        self._lock = threading.Condition()
        self._waiters: dict[int, _Waiter] = {}
        self._links: dict[int, AdviseLink] = {}
        self._ready: deque[AdviseLink] = deque()
        self._orphans: dict[int, list[Update]] = {}
        self._closed = False
        self._user_closed = False
        self._error: BaseException | None = None
        self._reader = threading.Thread(target=self._read_loop, daemon=True, name="interproc dde reader")
        self._dispatcher = threading.Thread(target=self._dispatch_loop, daemon=True, name="interproc dde callbacks")
        self._reader.start()
        self._dispatcher.start()

    def __repr__(self) -> str:
        return f"<dde.Conversation {self.service}|{self.topic}{' closed' if self._closed else ''}>"

    # -- calls ------------------------------------------------------------------
    def _call(self, request: tuple[int, bytes], timeout: float | None = _UNSET) -> Reply:
        if self._user_closed:
            raise HandleClosed(f"{self!r} is closed")
        timeout = self.timeout if timeout is _UNSET else timeout
        rid, frame = request
        waiter = _Waiter()
        with self._lock:
            if self._error is not None:
                raise self._gone()
            self._waiters[rid] = waiter
        try:
            with self._send_lock:
                self._ch.send(frame)
            deadline = None if timeout is None else time.monotonic() + timeout
            while not waiter.event.wait(0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))):
                if deadline is not None and time.monotonic() >= deadline:
                    raise Timeout(f"DDE service {self.service!r} did not answer in {timeout} s")
        finally:
            with self._lock:
                self._waiters.pop(rid, None)
        if waiter.reply is None:
            raise self._gone()
        ClientConversation.raise_for(waiter.reply, f"{self.service}|{self.topic}")
        return waiter.reply

    def _gone(self) -> Exception:
        if isinstance(self._error, ProtocolError):
            return self._error  # the server (or we) could not parse a frame: say so, not just "closed"
        return ChannelClosed(f"the DDE service {self.service!r} ended the conversation ({self._error})")

    def request(self, item: str, *, timeout: float | None = _UNSET) -> str | bytes:
        """Cold link (XTYP_REQUEST): the item's current value; ``NotFound`` for an unknown item."""
        body = self._call(self._proto.request(item), timeout).body
        return decode_value(body.get("format"), body.get("value"))

    def advise(self, item: str, *, hot: bool = True, callback: Callable[..., Any] | None = None,
               ack: bool = False, timeout: float | None = _UNSET) -> AdviseLink:
        """Start a link (XTYP_ADVSTART).  Hot: ``callback(item, value)`` for each new value;
        warm (``hot=False``): ``callback(item)``, then ``request`` if you want the value.
        ``ack=True`` (XTYPF_ACKREQ) delivers every value, pacing the server; without it the
        newest value wins and superseded ones are counted in ``link.dropped``."""
        body = self._call(self._proto.advise(item, hot, ack, shm=hot and not ack and self.local), timeout).body
        link = AdviseLink(self, int(body["link"]), item, hot, ack, callback)
        if isinstance(body.get("shm"), str):
            try:
                sub = Subscriber.open(body["shm"], policy="drop_oldest", timeout=5)
            except (InterprocError, OSError, ValueError):
                link.close()  # the publisher is full or gone: the same link over the socket instead
                self.local = False
                try:
                    return self.advise(item, hot=hot, callback=callback, ack=ack, timeout=timeout)
                finally:
                    self.local = True
            with self._lock:
                self._links[link.id] = link  # so that the conversation's end ends it too
            link._thread = threading.Thread(target=self._shm_loop, args=(link, sub), daemon=True,
                                            name="interproc dde hot link")
            link._thread.start()
            return link
        with self._lock:
            self._links[link.id] = link
            for event in self._orphans.pop(link.id, []):
                self._queue(link, event)
        return link

    def poke(self, item: str, value: str | bytes, *, format: str | None = None,
             timeout: float | None = _UNSET) -> None:
        """XTYP_POKE: ``PermissionDenied`` if the server takes no pokes, ``RemoteError`` if its handler raised."""
        self._call(self._proto.poke(item, value, format), timeout)

    def execute(self, command: str, *, timeout: float | None = _UNSET) -> Any:
        """XTYP_EXECUTE: the handler's result; ``PermissionDenied`` if the server has no handler."""
        return self._call(self._proto.execute(command), timeout).body.get("result")

    # -- the reader and the callbacks -----------------------------------------------
    def _read_loop(self) -> None:
        try:
            while True:
                event = ClientConversation.receive(self._ch.recv())
                with self._lock:
                    if isinstance(event, Reply):
                        waiter = self._waiters.get(event.id)
                        if waiter is not None:
                            waiter.reply = event
                            waiter.event.set()
                        continue
                    link = self._links.get(event.link)
                    if link is None:
                        # an update can overtake the advise() call that is about to register its link
                        self._orphans.setdefault(event.link, []).append(event)
                        continue
                    self._queue(link, event)
        except Exception as exc:
            self._error = exc if not isinstance(exc, ChannelClosed) else ChannelClosed("the service went away")
        finally:
            self._end()

    def _queue(self, link: AdviseLink, event: Update) -> None:
        """Hand an update to the dispatcher (called with the lock held)."""
        if not link.ack and link._pending:
            link.dropped += 1 + link._pending[-1].dropped  # the newest value wins
            link._pending.clear()
        link._pending.append(event)
        if link not in self._ready:
            self._ready.append(link)
        self._lock.notify_all()

    def _end(self) -> None:
        with self._lock:
            if self._error is None:
                self._error = ChannelClosed("closed")
            self._closed = True
            for waiter in self._waiters.values():
                waiter.event.set()
            for link in self._links.values():
                link.closed = True
            self._lock.notify_all()
        self._ch.close()

    def _shm_loop(self, link: AdviseLink, sub: Any) -> None:
        """A local hot link: samples straight from the server's publisher (newest wins: a
        reader that falls behind skips the oldest, counted in ``link.dropped``)."""
        try:
            while not link.closed:
                try:
                    sample = sub.recv_bytes(timeout=0.25)
                except Timeout:
                    continue
                except ChannelClosed:
                    break  # the server closed or died, and everything it published was read
                got = decode_sample(sample)
                if got is None:  # too big for a slot: fetch it
                    try:
                        value: Any = self.request(link.item)
                    except InterprocError:
                        continue
                else:
                    value = got[1]
                link.received += 1
                link.dropped = sub.dropped
                link.last_value = value
                try:
                    if link.callback is not None and not link.closed:
                        link.callback(link.item, value)
                except Exception:
                    import traceback

                    traceback.print_exc()
        finally:
            link.closed = True
            sub.close()

    def _dispatch_loop(self) -> None:
        while True:
            with self._lock:
                while not self._ready and not self._closed:
                    self._lock.wait()
                if not self._ready:
                    return
                link = self._ready.popleft()
                if not link._pending:
                    continue
                update = link._pending.popleft()
                if link._pending:
                    self._ready.append(link)
            link.received += 1
            link.dropped += update.dropped
            link.last_value = update.value
            try:
                if link.callback is not None and not link.closed:
                    link.callback(update.item, update.value) if link.hot else link.callback(update.item)
            except Exception:
                import traceback

                traceback.print_exc()  # a callback's bug must not end the conversation
            if link.ack and not self._closed:
                try:
                    with self._send_lock:
                        self._ch.send(ClientConversation.ack(link.id))
                except (InterprocError, OSError):
                    pass

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """End the conversation (XTYP_DISCONNECT); its links end too."""
        if self._closed:
            return
        with self._lock:
            self._closed = self._user_closed = True
            self._lock.notify_all()
        self._ch.close()
        for t in (self._reader, self._dispatcher):
            if t is not threading.current_thread():
                t.join(timeout=2)

    def __enter__(self) -> "Conversation":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(service: str, topic: str, *, timeout: float | None = None, host: str | None = None,
            authkey: bytes | None = None, scope: Scope = "user", **connect_options: Any) -> Conversation:
    """Open a conversation (DdeConnect).  ``NotFound`` at once if the service is not running,
    unless ``timeout=`` is given: then wait that long for it.  ``host="tcp://HOST:PORT"``
    (with ``authkey=`` or ``ssl=``) reaches a server over the network (NetDDE)."""
    if host is not None and host.lower().startswith(("nats://", "tls://")):  # a JetStream bucket (._nats)
        from ._nats import connect as nats_connect

        return nats_connect(service, topic, host, timeout=timeout, **connect_options)
    address = host if host is not None else f"unix://{service_path(service, scope)}"
    if authkey is not None:
        connect_options["authkey"] = authkey
    try:
        ch = interproc.connect(address, timeout=timeout, **connect_options)
    except NotFound:
        raise NotFound(f"no DDE service {service!r} is running") from None
    conv = Conversation(ch, service, topic, timeout, local=host is None)
    try:
        conv._call(conv._proto.initiate())
    except BaseException:
        conv.close()
        raise
    return conv


def services(*, scope: Scope = "user", timeout: float = 2.0) -> list[tuple[str, list[str]]]:
    """``[(service, [topics])]`` of every running service of this user (XTYP_WILDCONNECT)."""
    found = []
    for name in service_names(scope):
        try:
            with connect(name, SYSTEM, timeout=None, scope=scope) as conv:
                topics = conv.request("Topics", timeout=timeout)
        except (InterprocError, OSError, ValueError):
            continue  # a stale socket file or a server that is going away
        found.append((name, str(topics).split("\t")))
    return found
