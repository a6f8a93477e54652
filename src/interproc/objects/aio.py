"""asyncio distributed objects: ``await objects.aio.connect(address)``.

    async with await objects.aio.connect(srv.address, timeout=5) as conn:
        c = await conn.create("Shapes.Circle", 2.0)
        await c.area(); await c.radius; await c.set("radius", 3.0)
        shape = await c.query_interface(IShape)

    srv = objects.aio.Server("tcp://127.0.0.1:0"); srv.register("Shapes.Circle", Circle)
    await srv.start(); ...; await srv.close()

Same wire as the blocking API: either client works with either server.
Also reachable as ``interproc.aio.objects``.
"""

from .._objects._aio import (
    AsyncConnection as AsyncConnection,
    AsyncObjectProxy as AsyncObjectProxy,
    connect as connect,
)
from .._objects._aio_server import AsyncServer as Server

__all__ = ["AsyncConnection", "AsyncObjectProxy", "Server", "connect"]
