"""The asyncio object server: ``await objects.aio.Server(address).start()``.

The same ProgID registry, exports, leases and ``interproc ls`` record as the
blocking :class:`objects.Server` (both are a :class:`Registry`), the same
Session marshalling (as :class:`AsyncSession`), the rpc AsyncEndpoint moving
the bytes, and ``interproc.aio.serve`` accepting: one task per connection.
Methods of served objects run on the event loop; ``async def`` ones are
awaited, so a slow one should be a coroutine.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .._errors import ChannelClosed, HandleClosed
from ._aio import AsyncSession
from ._server import Registry, _unlink


class AsyncServer(Registry):
    """asyncio twin of :class:`interproc.objects.Server`.

        srv = objects.aio.Server("unix:///tmp/shapes.sock", ping_interval=120.0, missed_pings=3)
        srv.register("Shapes.Circle", Circle, interfaces=[IShape])
        await srv.start()          # srv.address is then the real address
        ...
        await srv.close()          # or: async with objects.aio.Server(...) as srv

    ``**options`` (``authkey=``, ``ssl=`` ...) go to ``interproc.aio.listen``.
    """

    def __init__(self, address: str, *, ping_interval: float = 120.0, missed_pings: int = 3,
                 tracebacks: bool = True, **options: Any) -> None:
        super().__init__(ping_interval=ping_interval, missed_pings=missed_pings, tracebacks=tracebacks)
        self.address = address
        self._options = options
        self._server: Any = None
        self._keeper_task: asyncio.Task[None] | None = None

    async def start(self) -> AsyncServer:
        """Listen and serve in tasks; returns the server (``address`` then has the real port)."""
        from ..aio import listen as aio_listen, serve as aio_serve

        if self._server is None and not self._closed:
            listener = await aio_listen(self.address, **self._options)
            self.address = listener.address
            self._server = await aio_serve(listener, self._handle)
            self._keeper_task = asyncio.get_running_loop().create_task(self._keeper())
            self._start_record()
        return self

    async def serve_forever(self) -> None:
        """Serve until cancelled (Ctrl-C under ``asyncio.run``) or ``close()``."""
        await self.start()
        try:
            await self._server.serve_forever()
        finally:
            await self.close()

    async def _handle(self, channel: Any) -> None:
        session = AsyncSession(channel, exports=self.exports, factory=self._create, hello=self._hello,
                               classes=self.classes, tracebacks=self.tracebacks)
        with self._lock:
            self._sessions.add(session)
        try:
            await session.ep.wait_closed()  # the reader task answers calls until the peer goes
        except (ChannelClosed, HandleClosed, asyncio.CancelledError):
            pass
        finally:
            with self._lock:
                self._sessions.discard(session)
            await session.ep.close()
            session.closed_by_peer()  # its references are released

    async def _keeper(self) -> None:
        """Close connections whose lease ran out; keep the ``interproc ls`` record current."""
        period = min(self.ping_interval / 2, 0.5)
        while True:
            await asyncio.sleep(period)
            for s in self._expired():
                await s.ep.close()  # its handler ends and drops its references
            if self._dirty.is_set():
                self._write_record()

    async def close(self) -> None:
        """Stop accepting, close every connection (their objects are released)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            sessions = list(self._sessions)
        if self._keeper_task is not None:
            self._keeper_task.cancel()
        for s in sessions:
            await s.ep.close()
            s.closed_by_peer()
        if self._server is not None:
            await self._server.aclose(timeout=1.0)
        _unlink(self._record)

    async def __aenter__(self) -> AsyncServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<objects.aio.Server {self.address} classes={sorted(self._classes)} live={self.live}>"
