"""RPC: expose an object's public methods; call them from any process.

    srv = rpc.Server(Calc(), "tcp://127.0.0.1:0", authkey=b"k").start()
    p = rpc.connect(srv.address, authkey=b"k", timeout=5)
    p.add(1, 2)                                  # 3
    with p.batch() as b: f = b.add(1, 2)         # one round trip
    f.result()

Wire: JSON-RPC 2.0 over any interproc address (msgpack negotiated between
interproc peers); ``jsonrpc+tcp://`` / ``jsonrpc+unix://`` speak plain
newline-delimited JSON-RPC 2.0 for other languages.  asyncio:
``interproc.rpc.aio``.  See docs/rpc.md.
"""

from .._errors import RemoteError as RemoteError
from .._rpc._client import Batch as Batch, Proxy as Proxy, connect as connect
from .._rpc._endpoint import Pending as Pending
from .._rpc._server import Server as Server

__all__ = ["Batch", "Pending", "Proxy", "RemoteError", "Server", "connect"]
