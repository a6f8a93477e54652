"""The asyncio DDE client driver: ``await dde.aconnect(...)`` -> :class:`AsyncConversation`.

Same :class:`ClientConversation` and the same link rules as the blocking
driver (a reader task and a callback task instead of threads); callbacks may
be plain functions or coroutines.
"""

from __future__ import annotations

import asyncio
import inspect
import traceback
from collections import deque
from typing import Any, Callable

import interproc.aio

from .._errors import ChannelClosed, HandleClosed, NotFound, Timeout
from .._naming import Scope
from ._protocol import ClientConversation, Reply, Update, decode_value
from ._server import service_path

_UNSET: Any = object()


class AsyncAdviseLink:
    """A warm or hot link of an :class:`AsyncConversation`; ``await link.close()`` unadvises."""

    def __init__(self, conv: "AsyncConversation", link_id: int, item: str, hot: bool, ack: bool,
                 callback: Callable[..., Any] | None) -> None:
        self.conversation, self.id, self.item, self.hot, self.ack = conv, link_id, item, hot, ack
        self.callback = callback
        self.received = 0
        self.dropped = 0
        self.last_value: Any = None
        self.closed = False
        self._pending: deque[Update] = deque()

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
        self._ready: deque[AsyncAdviseLink] = deque()
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
        if not link.ack and link._pending:
            link.dropped += 1 + link._pending[-1].dropped
            link._pending.clear()
        link._pending.append(event)
        if link not in self._ready:
            self._ready.append(link)
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
            if not self._ready:
                if self._closed:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
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
                    result = link.callback(update.item, update.value) if link.hot else link.callback(update.item)
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
    address = host if host is not None else f"unix://{service_path(service, scope)}"
    if authkey is not None:
        connect_options["authkey"] = authkey
    try:
        ch = await interproc.aio.connect(address, timeout=timeout, **connect_options)
    except NotFound:
        raise NotFound(f"no DDE service {service!r} is running") from None
    conv = AsyncConversation(ch, service, topic, timeout)
    try:
        await conv._call(conv._proto.initiate())
    except BaseException:
        await conv.close()
        raise
    return conv
