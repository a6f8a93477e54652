"""``await interproc.aio.serve(listener, handler)``: one task per connection.

    async def echo(ch):
        async for msg in ch:
            await ch.send(msg)

    server = await interproc.aio.serve(await interproc.aio.listen("unix:///tmp/e.sock"), echo)
    await server.serve_forever()        # until cancelled (Ctrl-C under asyncio.run) or aclose()

The same rules as :mod:`interproc._serve`: the handler's connection is closed
when it returns or raises; an exception is logged on
``logging.getLogger("interproc")`` and never stops the server; ``aclose(timeout=)``
stops accepting, gives running handlers ``timeout`` seconds, then cancels
them.  Cancelling ``serve_forever()`` (which is what Ctrl-C does to the
main task under ``asyncio.run``) closes the server the same way.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from .._contract import AsyncChannel, AsyncListener
from .._errors import ChannelClosed, HandleClosed, InterprocError, Timeout
from .._serve import SHUTDOWN_TIMEOUT, log


class AsyncServer:
    """A running accept task over ``listener``; see :func:`serve`."""

    def __init__(self, listener: AsyncListener, handler: Callable[[AsyncChannel], Awaitable[Any]]) -> None:
        if not callable(handler):
            raise TypeError(f"handler must be an async callable, not {type(handler).__name__}")
        self.listener = listener
        self.address = getattr(listener, "address", repr(listener))
        self.handler = handler
        self.served = 0
        self._live: dict[asyncio.Task, Any] = {}
        self._stopping = False
        self._done = asyncio.get_running_loop().create_future()
        self._accepting = asyncio.ensure_future(self._accept_loop())

    def __repr__(self) -> str:
        return f"<AsyncServer {self.address} {'closed' if self.closed else f'{self.connections} connection(s)'}>"

    @property
    def connections(self) -> int:
        return len(self._live)

    @property
    def closed(self) -> bool:
        return self._done.done()

    async def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                ch = await self.listener.accept()
            except (HandleClosed, asyncio.CancelledError):
                return
            except Timeout:
                continue
            except (InterprocError, OSError) as exc:
                if self._stopping:
                    return
                log.warning("%s: a connection was refused: %s", self.address, exc)
                continue
            self.served += 1
            task = asyncio.ensure_future(self._run(ch, f"{self.address} connection {self.served}"))
            self._live[task] = ch
            task.add_done_callback(lambda t: self._live.pop(t, None))

    async def _run(self, ch: Any, what: str) -> None:
        try:
            await self.handler(ch)
        except ChannelClosed as exc:
            log.debug("%s: the peer went away (%s)", what, exc)
        except HandleClosed as exc:
            if not self._stopping:
                log.exception("%s: the handler used a closed handle: %s", what, exc)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
        except Exception:
            log.exception("%s: the handler raised; its connection is closed, the server goes on", what)
        finally:
            ch.close()

    async def serve_forever(self) -> None:
        """Wait until the server is closed; cancelling this closes it gracefully."""
        try:
            await asyncio.shield(self._done)
        except asyncio.CancelledError:
            await self.aclose()
            raise

    async def aclose(self, timeout: float | None = SHUTDOWN_TIMEOUT) -> None:
        """Stop accepting, give running handlers up to ``timeout`` seconds, then
        cancel them and close their connections.  Idempotent."""
        if self._stopping:
            await asyncio.shield(self._done)
            return
        self._stopping = True
        self._accepting.cancel()
        try:
            self.listener.close()
        except Exception:
            log.exception("%s: closing the listener raised", self.address)
        try:
            await self._accepting
        except asyncio.CancelledError:
            pass
        me = asyncio.current_task()
        tasks = [t for t in self._live if t is not me]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for t in pending:
                self._live[t].close()  # wakes a handler blocked in recv
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        if not self._done.done():
            self._done.set_result(None)

    def close(self) -> None:
        """Start a graceful shutdown without waiting for it (from sync code)."""
        asyncio.ensure_future(self.aclose())

    async def __aenter__(self) -> "AsyncServer":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def serve(listener: AsyncListener, handler: Callable[[AsyncChannel], Awaitable[Any]]) -> AsyncServer:
    """Serve ``listener``: ``await handler(channel)`` in a task per client.

    Returns the running :class:`AsyncServer` (``serve_forever()``,
    ``aclose(timeout=)``, ``async with``).
    """
    return AsyncServer(listener, handler)
