"""DDE on a NATS server: items in a JetStream key-value bucket, links as watches.

(This module is the client's side; the server's is :mod:`._nats_host`.)

    srv = dde.Server("Prices", host="nats://HOST:PORT"); srv.set("Stocks", "ACME", "101.5"); srv.start()
    conv = dde.connect("Prices", "Stocks", host="nats://HOST:PORT", timeout=5)

The server mirrors every item into the bucket ``interproc_dde_<service>``
(key ``<topic>.<item>``, each escaped so that no name adds key tokens or
wildcards; value ``FORMAT NUL raw bytes``) and answers calls on the subject
``interproc.dde.<service>``:

* cold link (``request``): a get from the bucket (the System topic and
  ``TopicItemList`` are asked of the server);
* hot link (``advise``): a watch on the item's key -- it replays the current
  value, then streams each change;
* warm link (``advise(hot=False)``): the same watch, headers only, so the
  callback hears *that* the item changed, not its value;
* ``poke`` and ``execute``: NATS request/reply.  A request carries the
  conversation's own frames of :mod:`._protocol` as a JSON list
  (``[initiate, call]``), so each one stands alone and the server answers
  it with a fresh :class:`ServerConversation`: the same sans-I/O rules as on
  a socket.

Flow: the server never waits for NATS in ``set()``: the newest value of each
item waits in this process and one task puts them, in turn.  A link without
``ack`` keeps only its newest undelivered value (``dropped`` counts the
others); with ``ack`` every value the watch saw is delivered, but nothing
paces the server (a bucket is not a conversation).

Restarts: when the connection comes back, the server re-creates its bucket if
the broker lost it (and puts every item again) and flushes what was set
meanwhile; each client re-opens its watches, which replay the latest value
(a value already delivered, same revision, is not delivered twice).
``Server.close()`` tells the clients (their conversations end, as on a
socket) and deletes the bucket.
"""


from __future__ import annotations

import asyncio
import json
import threading
import weakref
from collections import deque
from typing import Any, Callable

from .. import _nats
from .._errors import ChannelClosed, HandleClosed, NotFound, ProtocolError, Timeout
from .._naming import validate_name
from ._client import AdviseLink, Conversation
from ._nats_host import KIND, NatsHost, _server_of, _unpack, bucket_name, item_key, pack
from ._protocol import ITEM_LIST, SYSTEM, ClientConversation, Reply, decode_value, dump

__all__ = ["NatsAdviseLink", "NatsConversation", "NatsHost", "bucket_name", "connect", "item_key", "pack", "wait_more"]
_UNSET: Any = object()


# -- the client's side ------------------------------------------------------------
class NatsAdviseLink(AdviseLink):
    """A warm or hot link that is a watch on the item's key; ``close()`` stops it."""

    conversation: NatsConversation

    def __init__(self, conv: NatsConversation, link_id: int, item: str, hot: bool, ack: bool,
                 callback: Callable[..., Any] | None) -> None:
        super().__init__(conv, link_id, item, hot, ack, callback)
        self.key = item_key(conv.topic, item)
        #: (revision, time) of the last value delivered: its replay after a re-watch is skipped
        self.stamp: tuple[int, Any] = (0, None)
        self._task: Any = None
        self._values: deque[Any] = deque()

    def close(self, *, timeout: float | None = _UNSET) -> None:
        """Stop the watch (XTYP_ADVSTOP)."""
        if self.closed:
            return
        self.closed = True
        self.conversation._forget(self)


class NatsConversation(Conversation):
    """A DDE conversation through a NATS server (``dde.connect(..., host="nats://...")``)."""

    #: the class of this conversation's links (the asyncio face has its own)
    link_class: type[NatsAdviseLink] = NatsAdviseLink
    #: callbacks run on a dispatcher thread (the asyncio face runs them on its loop instead)
    threaded = True

    def __init__(self, service: str, topic: str, address: str, timeout: float | None, **creds: Any) -> None:
        validate_name(service, "DDE service name")
        if not isinstance(topic, str) or not topic:
            raise ValueError(f"a DDE topic is a non-empty str, got {topic!r}")
        self.service, self.topic, self.timeout, self.local = service, topic, timeout, False
        self.conn = _nats.connection(_server_of(address, "DDE host"), timeout=timeout, **creds)
        self.subject = _nats.subject(KIND, service)
        self.bucket = bucket_name(service)
        self.what = f"DDE service {service!r} on {_nats.redact(self.conn.server)}"
        self._proto = ClientConversation(service, topic)
        self._proto_lock = threading.Lock()
        self._lock = threading.Condition()
        self._links: dict[int, NatsAdviseLink] = {}  # type: ignore[assignment]
        self._ready: deque[NatsAdviseLink] = deque()  # type: ignore[assignment]
        self._next_link = 0
        self._closed = self._user_closed = False
        self._initiated = False
        self._error: BaseException | None = None
        self._kv: Any = None
        self._notice: Any = None
        self._dispatcher: threading.Thread | None = None
        if self.threaded:
            self._dispatcher = threading.Thread(target=self._dispatch_loop, daemon=True, name="interproc dde callbacks")
            self._dispatcher.start()

    def __repr__(self) -> str:
        return f"<dde.Conversation {self.service}|{self.topic} on NATS{' closed' if self._closed else ''}>"

    def _start(self) -> None:
        """Initiate (``NotFound`` if no server has the service or topic) and hear the server's close."""
        self._run(self._open(), self.timeout, "initiate")

    async def _open(self) -> None:
        """(On the NATS loop) initiate, then hear the server's close and the broker's returns."""
        await self._acall(self._payload(lambda: None), self.timeout)
        self._initiated = True
        self._notice = await self._subscribe_closed()
        self.conn.add_reconnect_listener(self._on_reconnect)

    async def _subscribe_closed(self) -> Any:
        """Hear the server's close (``.closed`` on the service's subject)."""
        me = weakref.ref(self)

        async def on_closed(msg: Any) -> None:
            conv = me()
            if conv is not None:
                conv._finish(ChannelClosed(f"the {conv.what} closed"))

        sub = await self.conn.nc.subscribe(self.subject + ".closed", cb=on_closed)
        await self.conn.nc.flush(timeout=5)
        return sub

    def _run(self, coro: Any, timeout: float | None, what: str) -> Any:
        return _nats.loop_thread().run(coro, None if timeout is None else timeout + 1, f"{self.what}: {what}")

    # -- calls (request/reply) ----------------------------------------------------
    def _ask(self, build: Callable[[], tuple[int, bytes] | None], timeout: float | None = _UNSET) -> Reply:
        timeout = self.timeout if timeout is _UNSET else timeout
        return self._run(self._acall(self._payload(build), timeout), timeout, "call")

    def _payload(self, build: Callable[[], tuple[int, bytes] | None]) -> bytes:
        """The request of a call: ``[initiate, call]`` frames of this conversation's protocol."""
        if self._user_closed:
            raise HandleClosed(f"{self!r} is closed")
        if self._error is not None:
            raise self._error
        with self._proto_lock:
            frames = [self._proto.initiate()[1]]
            call = build()
            if call is not None:
                frames.append(call[1])
        return b"[" + b",".join(frames) + b"]"

    async def _acall(self, payload: bytes, timeout: float | None) -> Reply:
        """(On the NATS loop) one call: request/reply, the reply frames checked by the protocol."""
        from nats import errors

        try:
            msg = await self.conn.nc.request(self.subject, payload, timeout=timeout or 3600 * 24)
        except errors.NoRespondersError:
            if self._initiated:
                raise ChannelClosed(f"the {self.what} is gone (no server answers)") from None
            raise NotFound(f"no DDE service {self.service!r} is running on {_nats.redact(self.conn.server)}") from None
        except (errors.TimeoutError, asyncio.TimeoutError):
            raise Timeout(f"{self.what} did not answer in {timeout} s") from None
        except errors.Error as exc:
            raise _nats.translate(exc, self.what) from exc
        try:
            replies = json.loads(msg.data)
            if not isinstance(replies, list) or not replies:
                raise ValueError
        except ValueError:
            raise ProtocolError(f"{self.what} answered with something that is not a list of DDE frames") from None
        reply: Reply | None = None
        for frame in replies:
            got = ClientConversation.receive(dump(frame) if isinstance(frame, dict) else b"")
            if not isinstance(got, Reply):
                raise ProtocolError(f"{self.what} answered a call with an update")
            reply = got
            if not got.ok and got.body.get("error") == "ProtocolError":
                raise ProtocolError(f"{self.what} could not parse our call: {got.body.get('message')}")
            ClientConversation.raise_for(got, f"{self.service}|{self.topic}")
        assert reply is not None
        return reply

    def request(self, item: str, *, timeout: float | None = _UNSET) -> str | bytes:
        """Cold link: the item's value from the bucket (``NotFound`` for an unknown item)."""
        timeout = self.timeout if timeout is _UNSET else timeout
        return self._run(self._request(item, timeout), timeout, f"get {item!r}")

    def _request(self, item: str, timeout: float | None) -> Any:
        """The coroutine of a cold link (arguments checked now, in the caller)."""
        if self.topic == SYSTEM or item == ITEM_LIST:  # computed by the server, not stored
            return self._computed(self._payload(lambda: self._proto.request(item)), timeout)
        if not isinstance(item, str) or not item:
            raise ValueError(f"a DDE item is a non-empty str, got {item!r}")
        if self._user_closed:
            raise HandleClosed(f"{self!r} is closed")
        if self._error is not None:
            raise self._error  # the server closed: as on a socket, the conversation is over
        return self._get(item)

    async def _computed(self, payload: bytes, timeout: float | None) -> str | bytes:
        body = (await self._acall(payload, timeout)).body
        return decode_value(body.get("format"), body.get("value"))

    async def _get(self, item: str) -> str | bytes:
        from nats.js import errors as js_errors

        try:
            kv = await self._bucket()
            entry = await kv.get(item_key(self.topic, item))
        except (js_errors.KeyNotFoundError, js_errors.KeyDeletedError):
            raise NotFound(f"{self.service}|{self.topic}: topic {self.topic!r} has no item {item!r}") from None
        except js_errors.BucketNotFoundError:
            raise ChannelClosed(f"the {self.what} is gone (its bucket was deleted)") from None
        return _unpack(entry.value or b"", self.what)

    async def _bucket(self) -> Any:
        if self._kv is None:
            self._kv = await self.conn.nc.jetstream().key_value(self.bucket)
        return self._kv

    # -- links (watches) ------------------------------------------------------------
    def advise(self, item: str, *, hot: bool = True, callback: Callable[..., Any] | None = None,
               ack: bool = False, timeout: float | None = _UNSET) -> AdviseLink:
        """A watch on the item: hot links get ``callback(item, value)`` for the current value and
        each change; warm links (``hot=False``) ``callback(item)``.  ``ack=True`` delivers every
        value the watch sees (no newest-wins); it does not pace the server."""
        timeout = self.timeout if timeout is _UNSET else timeout
        link = self._new_link(item, hot, ack, callback)
        try:
            self._run(self._start_watch(link), timeout, f"watch {item!r}")
        except BaseException:
            self._forget(link)
            raise
        return link

    def _new_link(self, item: str, hot: bool, ack: bool, callback: Callable[..., Any] | None) -> NatsAdviseLink:
        if not isinstance(item, str) or not item:
            raise ValueError(f"a DDE item is a non-empty str, got {item!r}")
        if self._user_closed:
            raise HandleClosed(f"{self!r} is closed")
        if self._error is not None:
            raise self._error
        with self._lock:
            self._next_link += 1
            link = self.link_class(self, self._next_link, item, hot, ack, callback)
            self._links[link.id] = link
        return link

    async def _open_watch(self, link: NatsAdviseLink) -> Any:
        kv = await self._bucket()
        return await kv.watch(link.key, meta_only=not link.hot)

    async def _start_watch(self, link: NatsAdviseLink) -> None:
        from nats.js import errors as js_errors

        try:
            watcher = await self._open_watch(link)
        except js_errors.BucketNotFoundError:
            raise ChannelClosed(f"the {self.what} is gone (its bucket was deleted)") from None
        link._task = asyncio.get_running_loop().create_task(self._consume(link, watcher))

    async def _rewatch(self, link: NatsAdviseLink) -> None:
        while not link.closed and not self._closed:
            try:
                self._kv = None
                watcher = await self._open_watch(link)
            except Exception:  # the broker or its JetStream is not back yet
                await asyncio.sleep(_nats.RECONNECT_WAIT)
                continue
            await self._consume(link, watcher)
            return

    async def _consume(self, link: NatsAdviseLink, watcher: Any) -> None:
        from nats.js.kv import KV_DEL, KV_PURGE

        try:
            while not link.closed:
                entry = await watcher.updates(timeout=None)
                if entry is None:
                    continue  # "the replay is done"
                if not hasattr(entry, "revision"):
                    return  # the watcher was stopped
                stamp = (entry.revision, entry.created)  # a re-created bucket counts revisions from 1 again
                if entry.operation in (KV_DEL, KV_PURGE) or stamp == link.stamp:
                    continue  # deleted, or the replay of what this link already delivered
                link.stamp = stamp
                try:
                    value = _unpack(entry.value or b"", self.what) if link.hot else None
                except ProtocolError:
                    continue  # not a value a DDE server wrote: skip it, keep the link
                self._deliver(link, value)
        finally:
            try:
                await watcher.stop()
            except Exception:  # the connection is gone: so is the subscription
                pass

    def _deliver(self, link: NatsAdviseLink, value: Any) -> None:
        with self._lock:
            if not link.ack and link._values:
                link.dropped += len(link._values)  # the newest value wins
                link._values.clear()
            link._values.append(value)
            if link not in self._ready:
                self._ready.append(link)
            self._lock.notify_all()
        self._wake()

    def _wake(self) -> None:
        """A value is ready or the conversation ended (the asyncio face wakes its loop here)."""

    def _on_reconnect(self) -> None:
        # Watches are JetStream consumers: open them again (they replay the latest value).
        self._kv = None
        loop = _nats.loop_thread().loop
        with self._lock:
            links = list(self._links.values())
        for link in links:
            if link._task is not None:
                link._task.cancel()
            link._task = loop.create_task(self._rewatch(link))

    def _forget(self, link: NatsAdviseLink) -> None:
        with self._lock:
            self._links.pop(link.id, None)
            task, link._task = link._task, None
        if task is not None:
            _nats.loop_thread().loop.call_soon_threadsafe(task.cancel)

    def _take(self, wait: bool) -> tuple[NatsAdviseLink, Any] | None:
        """The next (link, value) to deliver, counted as received; None when there is none
        (``wait``: when the conversation ended)."""
        with self._lock:
            while True:
                while wait and not self._ready and not self._closed:
                    self._lock.wait()
                if not self._ready:
                    return None
                link = self._ready.popleft()
                if not link._values:
                    continue
                value = link._values.popleft()
                if link._values:
                    self._ready.append(link)
                link.received += 1
                link.last_value = value
                return link, value

    @staticmethod
    def _callback(link: NatsAdviseLink, value: Any) -> Any:
        """Run the link's callback; what it returns (the asyncio face awaits a coroutine)."""
        if link.callback is None or link.closed:
            return None
        return link.callback(link.item, value) if link.hot else link.callback(link.item)

    def _dispatch_loop(self) -> None:
        while (got := self._take(wait=True)) is not None:
            try:
                self._callback(*got)
            except Exception:
                import traceback

                traceback.print_exc()  # a callback's bug must not end the conversation

    # -- poke, execute, the end ---------------------------------------------------------
    def poke(self, item: str, value: str | bytes, *, format: str | None = None,
             timeout: float | None = _UNSET) -> None:
        self._ask(lambda: self._proto.poke(item, value, format), timeout)

    def execute(self, command: str, *, timeout: float | None = _UNSET) -> Any:
        return self._ask(lambda: self._proto.execute(command), timeout).body.get("result")

    def _stop(self) -> None:
        """End the conversation for its user (both faces): links end, the server's close is no longer heard."""
        self._user_closed = True
        self._finish(ChannelClosed("closed"))
        self.conn.remove_reconnect_listener(self._on_reconnect)
        if self._notice is not None:
            try:
                _nats.loop_thread().submit(self._notice.unsubscribe())
            except Exception:  # the loop or connection is gone: so is the subscription
                pass

    def _finish(self, error: BaseException) -> None:
        with self._lock:
            if self._error is None:
                self._error = error
            self._closed = True
            links = list(self._links.values())
            self._lock.notify_all()
        for link in links:
            link.closed = True
            self._forget(link)
        self._wake()

    def close(self) -> None:
        """End the conversation; its links end too."""
        if self._user_closed:
            return
        self._stop()
        if self._dispatcher is not None and self._dispatcher is not threading.current_thread():
            self._dispatcher.join(timeout=2)


def wait_more(exc: NotFound, deadline: float | None) -> bool:
    """Whether a connect that got ``exc`` tries again: only a missing server is waited for
    ("no such topic" is an answer from a live server), and only until ``deadline``."""
    import time

    return deadline is not None and time.monotonic() < deadline and "is running" in str(exc)


def connect(service: str, topic: str, address: str, *, timeout: float | None = None,
            **creds: Any) -> NatsConversation:
    """``dde.connect(service, topic, host="nats://...")``: ``NotFound`` at once if no server has the
    service, unless ``timeout=`` is given: then wait that long for one."""
    import time

    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        conv = NatsConversation(service, topic, address, timeout, **creds)
        try:
            conv._start()
            return conv
        except NotFound as exc:
            conv.close()
            if not wait_more(exc, deadline):
                raise
            time.sleep(0.1)
        except BaseException:
            conv.close()
            raise


