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
from typing import Any, Callable

import interproc

from .._errors import ChannelClosed, HandleClosed, InterprocError, NotFound, ProtocolError, Timeout
from .._naming import Scope
from ..shm import Subscriber
from ._protocol import SYSTEM, ClientConversation, Deliveries, LinkState, Reply, Update, decode_sample, decode_value
from ._protocol import TEXT as _TEXT
from ._state import service_names, service_path

_TEXT_PREFIX = _TEXT.encode() + b"\0"
_TEXT_CUT = len(_TEXT_PREFIX)
#: how long a hot-link reader spins before it sleeps: short, because a fan-out runs many
#: readers on few CPUs, and a spinning reader takes the CPU the publisher needs
HOT_SPIN = 20e-6
#: at most this many samples taken per call
HOT_BATCH = 256
#: a batch this big means a busy publisher: then an empty ring is met with a nap of HOT_NAP
#: seconds (the ring holds 2048 samples: a 1 ms nap loses nothing below ~2M updates/s)
HOT_BUSY = 8
HOT_NAP = 0.001

_UNSET: Any = object()
_SKIP: Any = object()


class AdviseLink(LinkState):
    """A warm or hot link; ``close()`` ends it (unadvise)."""

    def __init__(self, conv: "Conversation", link_id: int, item: str, hot: bool, ack: bool,
                 callback: Callable[..., Any] | None) -> None:
        super().__init__(link_id, item, hot, ack, callback)
        self.conversation = conv
        self._thread: threading.Thread | None = None  # the shared-memory reader of a local hot link

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
        self._deliveries = Deliveries()
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
            try:
                with self._send_lock:
                    self._ch.send(frame)
            except ChannelClosed:
                if self._error is None:
                    self._error = ChannelClosed("the service went away")
                self._end()  # the service is gone: end the conversation now, not when the reader notices
                raise self._gone() from None
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
                sub = Subscriber.open(body["shm"], policy="drop_oldest", timeout=5, spin=HOT_SPIN)
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
        self._deliveries.offer(link, event)
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

    def _odd_sample(self, raw: bytes, newer_follows: bool, item: str) -> tuple[Any, int | None]:
        """A ring sample that did not come as a str: (value, seq to skip below or None), or
        (_SKIP, None) when it is superseded, too big and unfetchable, or not ours."""
        try:
            if raw.startswith(_TEXT_PREFIX):
                return raw[_TEXT_CUT:].decode(), None
            got = decode_sample(raw)
            if got is not None:
                return got[1], None
            if newer_follows:  # too big for a slot, and a newer sample follows in this batch
                return _SKIP, None
            return self._fetch(item)
        except InterprocError:
            return _SKIP, None  # the oversized value could not be fetched: a newer one will come
        except ValueError:
            return _SKIP, None  # not a sample this server wrote

    def _shm_loop(self, link: AdviseLink, sub: Any) -> None:
        """A local hot link: samples straight from the server's publisher (newest wins: a
        reader that falls behind skips the oldest, counted in ``link.dropped``).

        This is the fan-out hot path: it takes every sample already published in one C call
        (``recv_available``; a batch is contiguous and ends at sample ``core.seq - 1``) and
        waits in ``recv`` only when there is none.  A value too big for a slot comes as an
        empty sample and is requested: once, for the newest such sample of a batch (older
        ones are superseded), and the ring samples older than the requested value are skipped
        (the reply's "seq"), so nothing older arrives after something newer."""
        core = sub._core
        recv, drain, item, callback = core.recv, core.recv_available, link.item, link.callback
        take = (HOT_BATCH, _TEXT_PREFIX)  # text samples come decoded: str (see pubsub_batch.c)
        skip_below = 0  # samples before this one are older than a value already delivered
        missed = 0
        try:
            busy = False
            while not link.closed:
                batch = drain(take)
                if not batch:
                    if busy:
                        # The publisher is busy (the last batch was big): nap and take the next
                        # batch whole, rather than sleep in recv and have it wake us (a syscall
                        # on its side) for every sample, 16 readers over.
                        busy = False
                        time.sleep(HOT_NAP)
                        continue
                    try:
                        sample = recv(timeout=0.25)
                    except Timeout:
                        continue
                    except ChannelClosed:
                        break  # the server closed or died, and everything it published was read
                    batch = [sample.tobytes()]  # bytes: decoded below (_odd_sample)
                busy = len(batch) >= HOT_BUSY
                first = core.seq - len(batch)
                if first < skip_below:
                    missed += min(len(batch), skip_below - first)
                    batch = batch[skip_below - first:]
                    first = skip_below
                # The fan-out's per-sample cost is this loop: a str is a text value ready to
                # hand over; anything else (another format, an oversized value, a bad sample)
                # goes through _odd_sample.  A raising callback is reported and skipped.
                n = len(batch)
                pos = delivered = 0
                last: Any = _SKIP
                while pos < n:
                    try:
                        for pos in range(pos, n):
                            value = batch[pos]
                            if value.__class__ is not str:
                                value, seq = self._odd_sample(value, pos < n - 1, item)
                                if value is _SKIP:
                                    missed += 1
                                    continue
                                if seq is not None:
                                    skip_below = seq
                                batch[pos] = value
                            if link.closed:
                                break
                            delivered += 1
                            last = value
                            if callback is not None:
                                callback(item, value)
                        pos = n
                    except Exception:
                        import traceback

                        traceback.print_exc()  # a callback's bug must not end the link
                        pos += 1
                    if link.closed:
                        break
                if last is not _SKIP:
                    link.received += delivered
                    link.last_value = last
                link.dropped = core.dropped + missed
        finally:
            link.closed = True
            sub.close()

    def _fetch(self, item: str) -> tuple[Any, int | None]:
        """An oversized hot value: (the item's value now, its publisher's sample count then)."""
        body = self._call(self._proto.request(item)).body
        seq = body.get("seq")
        return decode_value(body.get("format"), body.get("value")), seq if isinstance(seq, int) else None

    def _dispatch_loop(self) -> None:
        while True:
            with self._lock:
                while not self._deliveries.ready and not self._closed:
                    self._lock.wait()
                got = self._deliveries.take()
                if got is None:
                    if self._closed:
                        return
                    continue
            link, update = got
            try:
                link.call(update)
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


def connect_args(service: str, host: str | None, authkey: bytes | None, scope: Scope,
                 options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(address, connect options) of a service; shared with the asyncio client."""
    address = host if host is not None else f"unix://{service_path(service, scope)}"
    return address, (dict(options, authkey=authkey) if authkey is not None else options)


def not_running(service: str) -> NotFound:
    return NotFound(f"no DDE service {service!r} is running")


def connect(service: str, topic: str, *, timeout: float | None = None, host: str | None = None,
            authkey: bytes | None = None, scope: Scope = "user", **connect_options: Any) -> Conversation:
    """Open a conversation (DdeConnect).  ``NotFound`` at once if the service is not running,
    unless ``timeout=`` is given: then wait that long for it.  ``host="tcp://HOST:PORT"``
    (with ``authkey=`` or ``ssl=``) reaches a server over the network (NetDDE)."""
    if host is not None and host.lower().startswith(("nats://", "tls://")):  # a JetStream bucket (._nats)
        from ._nats import connect as nats_connect

        return nats_connect(service, topic, host, timeout=timeout, **connect_options)
    address, options = connect_args(service, host, authkey, scope, connect_options)
    try:
        ch = interproc.connect(address, timeout=timeout, **options)
    except NotFound:
        raise not_running(service) from None
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
