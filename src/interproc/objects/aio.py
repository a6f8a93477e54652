"""asyncio distributed objects: ``await objects.aio.connect(address)``.

    async with await objects.aio.connect(srv.address, timeout=5) as conn:
        c = await conn.create("Shapes.Circle", 2.0)
        await c.area(); await c.radius; await c.set("radius", 3.0)
        shape = await c.query_interface(IShape)

Same wire and servers as the blocking API (``objects.Server``).
"""

from .._objects._aio import (
    AsyncConnection as AsyncConnection,
    AsyncObjectProxy as AsyncObjectProxy,
    connect as connect,
)

__all__ = ["AsyncConnection", "AsyncObjectProxy", "connect"]
