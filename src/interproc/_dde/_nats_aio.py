"""The asyncio face of DDE on NATS: ``await dde.aconnect(service, topic, host="nats://...")``.

The conversation is :class:`._nats.NatsConversation` itself (same calls, gets
and watches, as coroutines on the process's NATS loop); this face only awaits
them from the caller's loop and runs the link callbacks there (plain functions
or coroutines) instead of on a dispatcher thread.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import traceback
from typing import Any, Callable

from .. import _nats
from .._errors import NotFound
from ._nats import NatsAdviseLink, NatsConversation, _server_of, wait_more

__all__ = ["AsyncNatsAdviseLink", "AsyncNatsConversation", "aconnect"]
_UNSET: Any = object()


class AsyncNatsAdviseLink(NatsAdviseLink):
    """A warm or hot link (a watch); ``await link.close()`` stops it."""

    async def close(self, *, timeout: float | None = _UNSET) -> None:  # type: ignore[override]
        if self.closed:
            return
        self.closed = True
        self.conversation._forget(self)


class _Core(NatsConversation):
    """The shared conversation, with callbacks handed to an asyncio loop."""

    link_class = AsyncNatsAdviseLink
    threaded = False

    def __init__(self, loop: asyncio.AbstractEventLoop, *args: Any, **kwargs: Any) -> None:
        self.loop = loop
        self.ready = asyncio.Event()
        super().__init__(*args, **kwargs)

    def _wake(self) -> None:
        try:
            self.loop.call_soon_threadsafe(self.ready.set)
        except RuntimeError:  # the caller's loop is closed: nobody is left to deliver to
            pass


class AsyncNatsConversation:
    """A DDE conversation through a NATS server, for asyncio code (``dde.aconnect(..., host="nats://...")``)."""

    def __init__(self, core: _Core) -> None:
        self._core = core
        self.service, self.topic, self.timeout = core.service, core.topic, core.timeout
        self._dispatcher = asyncio.ensure_future(self._dispatch_loop())

    def __repr__(self) -> str:
        return repr(self._core).replace("<dde.Conversation", "<dde.AsyncConversation", 1)

    async def _on_nats(self, coro: Any, timeout: float | None, what: str) -> Any:
        return await _nats.wrap(coro, timeout, f"{self._core.what}: {what}")

    def _timeout(self, timeout: float | None) -> float | None:
        return self.timeout if timeout is _UNSET else timeout

    async def request(self, item: str, *, timeout: float | None = _UNSET) -> str | bytes:
        """Cold link: the item's value from the bucket (``NotFound`` for an unknown item)."""
        timeout = self._timeout(timeout)
        return await self._on_nats(self._core._request(item, timeout), timeout, f"get {item!r}")

    async def advise(self, item: str, *, hot: bool = True, callback: Callable[..., Any] | None = None,
                     ack: bool = False, timeout: float | None = _UNSET) -> AsyncNatsAdviseLink:
        """A watch on the item (see :meth:`NatsConversation.advise`); the callback runs on this
        loop and may be a coroutine function."""
        timeout = self._timeout(timeout)
        link = self._core._new_link(item, hot, ack, callback)
        try:
            await self._on_nats(self._core._start_watch(link), timeout, f"watch {item!r}")
        except BaseException:
            self._core._forget(link)
            raise
        assert isinstance(link, AsyncNatsAdviseLink)
        return link

    async def poke(self, item: str, value: str | bytes, *, format: str | None = None,
                   timeout: float | None = _UNSET) -> None:
        timeout = self._timeout(timeout)
        payload = self._core._payload(lambda: self._core._proto.poke(item, value, format))
        await self._on_nats(self._core._acall(payload, timeout), timeout, "poke")

    async def execute(self, command: str, *, timeout: float | None = _UNSET) -> Any:
        timeout = self._timeout(timeout)
        payload = self._core._payload(lambda: self._core._proto.execute(command))
        return (await self._on_nats(self._core._acall(payload, timeout), timeout, "execute")).body.get("result")

    async def _dispatch_loop(self) -> None:
        core = self._core
        while True:
            got = core._take(wait=False)
            if got is None:
                if core._closed:
                    return
                core.ready.clear()
                if core._ready:  # a value came between the take and the clear
                    continue
                await core.ready.wait()
                continue
            try:
                out = core._callback(*got)
                if inspect.isawaitable(out):
                    await out
            except Exception:
                traceback.print_exc()  # a callback's bug must not end the conversation

    @property
    def closed(self) -> bool:
        return self._core._closed

    async def close(self) -> None:
        """End the conversation; its links end too."""
        if self._core._user_closed:
            return
        self._core._stop()
        self._dispatcher.cancel()
        await asyncio.gather(self._dispatcher, return_exceptions=True)

    async def __aenter__(self) -> AsyncNatsConversation:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def aconnect(service: str, topic: str, address: str, *, timeout: float | None = None,
                   **creds: Any) -> AsyncNatsConversation:
    """:func:`._nats.connect` for asyncio code: ``NotFound`` at once if no server has the service,
    unless ``timeout=`` is given: then wait that long for one."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        if _nats.connected(_server_of(address, "DDE host")):
            core = _Core(loop, service, topic, address, timeout, **creds)
        else:  # the first conversation connects, which may take a while: not on this loop
            core = await asyncio.to_thread(_Core, loop, service, topic, address, timeout, **creds)
        conv = AsyncNatsConversation(core)
        try:
            await conv._on_nats(core._open(), timeout, "initiate")
            return conv
        except NotFound as exc:
            await conv.close()
            if not wait_more(exc, deadline):
                raise
            await asyncio.sleep(0.1)
        except BaseException:
            await conv.close()
            raise
