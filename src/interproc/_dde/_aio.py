"""The asyncio DDE drivers: ``await dde.aconnect(...)`` -> :class:`AsyncConversation`, and
:class:`AsyncServer`.

Same :class:`ClientConversation` / :class:`ServerConversation` and the same
link rules as the blocking drivers (tasks instead of threads); callbacks and
handlers may be plain functions or coroutines.  The asyncio client takes hot
links over the socket (no shared-memory fast path); the asyncio server offers
the fast path to blocking local clients like the blocking server does.
"""

from __future__ import annotations

import asyncio
import inspect
import traceback
from typing import Any, Callable

import interproc.aio

from .._errors import ChannelClosed, HandleClosed, NotFound, ProtocolError, Timeout
from .._naming import Scope
from ._protocol import (
    ClientConversation, Deliveries, Execute, LinkState, Poke, Reply, ServerConversation, Update, decode_value, dump,
)
from ._client import connect_args, not_running
from ._state import ServerState, admitted, service_path

_UNSET: Any = object()


class AsyncAdviseLink(LinkState):
    """A warm or hot link of an :class:`AsyncConversation`; ``await link.close()`` unadvises."""

    def __init__(self, conv: "AsyncConversation", link_id: int, item: str, hot: bool, ack: bool,
                 callback: Callable[..., Any] | None) -> None:
        super().__init__(link_id, item, hot, ack, callback)
        self.conversation = conv

    async def close(self, *, timeout: float | None = _UNSET) -> None:
        if self.closed:
            return
        self.closed = True
        conv = self.conversation
        conv._links.pop(self.id, None)
        if not conv.closed:
            try:
                await conv._call(conv._proto.unadvise(self.id), timeout)
            except (ChannelClosed, HandleClosed):
                pass


class AsyncConversation:
    """A DDE conversation for asyncio code."""

    def __init__(self, ch: Any, service: str, topic: str, timeout: float | None) -> None:
        self._ch, self.service, self.topic, self.timeout = ch, service, topic, timeout
        self._proto = ClientConversation(service, topic)
        self._waiters: dict[int, asyncio.Future] = {}
        self._links: dict[int, AsyncAdviseLink] = {}
        self._deliveries = Deliveries()
        self._orphans: dict[int, list[Update]] = {}
        self._wake = asyncio.Event()
        self._closed = self._user_closed = False
        self._reader = asyncio.ensure_future(self._read_loop())
        self._dispatcher = asyncio.ensure_future(self._dispatch_loop())

    async def _call(self, request: tuple[int, bytes], timeout: float | None = _UNSET) -> Reply:
        if self._user_closed:
            raise HandleClosed(f"DDE conversation {self.service}|{self.topic} is closed")
        if self._closed:
            raise ChannelClosed(f"the DDE service {self.service!r} ended the conversation")
        timeout = self.timeout if timeout is _UNSET else timeout
        rid, frame = request
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._waiters[rid] = fut
        try:
            await self._ch.send(frame)
            reply = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise Timeout(f"DDE service {self.service!r} did not answer in {timeout} s") from None
        finally:
            self._waiters.pop(rid, None)
        ClientConversation.raise_for(reply, f"{self.service}|{self.topic}")
        return reply

    async def request(self, item: str, *, timeout: float | None = _UNSET) -> str | bytes:
        body = (await self._call(self._proto.request(item), timeout)).body
        return decode_value(body.get("format"), body.get("value"))

    async def advise(self, item: str, *, hot: bool = True, callback: Callable[..., Any] | None = None,
                     ack: bool = False, timeout: float | None = _UNSET) -> AsyncAdviseLink:
        body = (await self._call(self._proto.advise(item, hot, ack), timeout)).body
        link = AsyncAdviseLink(self, int(body["link"]), item, hot, ack, callback)
        self._links[link.id] = link
        for event in self._orphans.pop(link.id, []):
            self._queue(link, event)
        return link

    async def poke(self, item: str, value: str | bytes, *, format: str | None = None,
                   timeout: float | None = _UNSET) -> None:
        await self._call(self._proto.poke(item, value, format), timeout)

    async def execute(self, command: str, *, timeout: float | None = _UNSET) -> Any:
        return (await self._call(self._proto.execute(command), timeout)).body.get("result")

    async def _read_loop(self) -> None:
        try:
            while True:
                event = ClientConversation.receive(await self._ch.recv())
                if isinstance(event, Reply):
                    fut = self._waiters.get(event.id)
                    if fut is not None and not fut.done():
                        fut.set_result(event)
                    continue
                link = self._links.get(event.link)
                if link is None:
                    # an update can overtake the advise() call that is about to register its link
                    self._orphans.setdefault(event.link, []).append(event)
                    continue
                self._queue(link, event)
        except Exception:
            pass  # the service went away (or spoke garbage): the conversation ends
        finally:
            self._end()

    def _queue(self, link: AsyncAdviseLink, event: Update) -> None:
        self._deliveries.offer(link, event)
        self._wake.set()

    def _end(self) -> None:
        self._closed = True
        gone = ChannelClosed(f"the DDE service {self.service!r} ended the conversation")
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(gone)
        for link in self._links.values():
            link.closed = True
        self._wake.set()
        self._ch.close()

    async def _dispatch_loop(self) -> None:
        while True:
            got = self._deliveries.take()
            if got is None:
                if self._closed:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            link, update = got
            try:
                result = link.call(update)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                traceback.print_exc()
            if link.ack and not self._closed:
                try:
                    await self._ch.send(ClientConversation.ack(link.id))
                except Exception:
                    pass

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        if self._user_closed:
            return
        self._user_closed = self._closed = True
        self._ch.close()
        self._wake.set()
        for task in (self._reader, self._dispatcher):
            task.cancel()
        await asyncio.gather(self._reader, self._dispatcher, return_exceptions=True)

    async def __aenter__(self) -> "AsyncConversation":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def aconnect(service: str, topic: str, *, timeout: float | None = None, host: str | None = None,
                   authkey: bytes | None = None, scope: Scope = "user", **connect_options: Any) -> AsyncConversation:
    """The asyncio form of :func:`interproc.dde.connect`."""
    if host is not None and host.lower().startswith(("nats://", "tls://")):  # a JetStream bucket (._nats_aio)
        from ._nats_aio import aconnect as nats_aconnect

        return await nats_aconnect(service, topic, host, timeout=timeout, **connect_options)  # type: ignore[return-value]
    address, options = connect_args(service, host, authkey, scope, connect_options)
    try:
        ch = await interproc.aio.connect(address, timeout=timeout, **options)
    except NotFound:
        raise not_running(service) from None
    conv = AsyncConversation(ch, service, topic, timeout)
    try:
        await conv._call(conv._proto.initiate())
    except BaseException:
        await conv.close()
        raise
    return conv


# -- the asyncio server ------------------------------------------------------------

class _AsyncConv:
    def __init__(self, server: "AsyncServer", ch: Any) -> None:
        self.server, self.ch = server, ch
        self.proto = ServerConversation(server._store)
        if getattr(ch, "peer_credentials", None) is not None:
            self.proto.fast_path = server._fast_path
            self.proto.hot_seq = server._hot_seq
        self.wake = asyncio.Event()
        self.closed = False
        self.watched: frozenset[tuple[str, str]] = frozenset()  # kept by ServerState.rewatch
        self.watching: frozenset[str] = frozenset()

    async def run(self) -> None:
        """The conversation, in the task ``interproc.aio.serve`` gave it; a writer task of its own."""
        writer = asyncio.ensure_future(self.write_loop())
        try:
            await self.read_loop()
        finally:
            self.close()
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    async def read_loop(self) -> None:
        srv = self.server
        try:
            while True:
                frame = await self.ch.recv()
                with srv._lock:
                    events = self.proto.receive(frame)
                    if self.proto.watching is not self.watching:
                        srv.rewatch(self)
                self.wake.set()
                for event in events:
                    await self._handle(event)
        except ProtocolError as exc:
            srv.protocol_errors += 1
            try:
                await self.ch.send(dump({"op": "error", "error": "ProtocolError", "message": str(exc)}), timeout=1)
            except Exception:
                pass
        except Exception:
            pass  # the client left or died: end this conversation only

    async def _handle(self, event: Poke | Execute) -> None:
        srv, topic = self.server, self.proto.topic or ""
        handler, refused = srv.handler_for(event, topic)
        error: BaseException | None = None
        result = None
        if handler is not None:
            try:
                out = srv.call_handler(handler, event, topic)
                if inspect.isawaitable(out):
                    out = await out
                refused, result = srv.after_handler(event, topic, out)
            except Exception as exc:
                error = exc
        self.proto.answer(event.id, error, refused=refused, result=result)
        self.wake.set()

    async def write_loop(self) -> None:
        try:
            while not self.closed:
                frame = self.proto.next_frame()
                if frame is None:
                    self.wake.clear()
                    await self.wake.wait()
                    continue
                await self.ch.send(frame)  # a slow client waits here, and only its own links coalesce
        except Exception:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.wake.set()
            with self.server._lock:
                self.server.rewatch(self)
            self.server._convs.discard(self)
            self.ch.close()


class AsyncServer(ServerState):
    """The asyncio form of :class:`interproc.dde.Server` (same rules; handlers may be coroutines)."""

    def __init__(self, service: str, *, scope: Scope = "user") -> None:
        super().__init__(service, scope)
        self._listener: Any = None
        self._serving: Any = None  # interproc.aio.serve: a task per conversation

    def _notify(self, conv: Any) -> None:
        conv.wake.set()

    async def start(self) -> "AsyncServer":
        """Listen and serve in tasks of the running loop; returns self."""
        if self._closed:
            raise HandleClosed(f"DDE server {self.service!r} is closed")
        if self._listener is None:
            self._listener = await interproc.aio.listen(f"unix://{service_path(self.service, self.scope)}")
            self._serving = await interproc.aio.serve(self._listener, self._serve_one)
        return self

    async def serve_forever(self) -> None:
        await self.start()
        try:
            await self._serving.serve_forever()
        finally:
            self.close()

    async def _serve_one(self, ch: Any) -> None:
        if not admitted(ch, self.scope) or self._closed:
            return  # another user's process cannot reach a user-scope service (serve closes ch)
        conv = _AsyncConv(self, ch)
        self._convs.add(conv)
        await conv.run()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for conv in list(self._convs):
            conv.close()
        if self._serving is not None:
            self._serving.close()  # stops accepting now; its tasks end with their channels
        elif self._listener is not None:
            self._listener.close()
        self._close_pubs()

    async def __aenter__(self) -> "AsyncServer":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        if self._serving is not None:
            await self._serving.aclose(timeout=2)
