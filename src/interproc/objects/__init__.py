"""Distributed objects with COM/DCOM semantics, over any interproc address.

    srv = objects.Server("unix:///tmp/shapes.sock", ping_interval=120.0, missed_pings=3)
    srv.register("Shapes.Circle", Circle, interfaces=[IShape])   # ProgID -> class
    srv.start()
    c = objects.create("Shapes.Circle", srv.address, 2.0)        # proxy to a new remote instance
    c.area(); c.radius; c.radius = 3.0                           # methods, properties
    shape = c.query_interface(IShape)                            # or NoInterface

Objects that are not plain data travel by reference (a proxy; back at their
owner, the original object); references are counted per connection and
released on ``close()``, garbage collection, disconnect or a missed lease.
Calls are JSON-RPC 2.0 requests (msgpack negotiated) of ``interproc.rpc``'s
protocol.  asyncio: ``interproc.objects.aio``.  See docs/objects.md.
"""

from .._errors import RemoteError as RemoteError
from .._objects._client import Connection as Connection, connect as connect, create as create
from .._objects._proxy import InterfaceView as InterfaceView, NoInterface as NoInterface, ObjectProxy as ObjectProxy
from .._objects._server import Server as Server

__all__ = ["Connection", "InterfaceView", "NoInterface", "ObjectProxy", "RemoteError", "Server", "connect", "create"]
