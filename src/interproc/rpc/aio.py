"""asyncio RPC: ``await rpc.aio.connect(address)``, ``rpc.aio.Server(obj, address)``.

    srv = await rpc.aio.Server(Calc(), "tcp://127.0.0.1:0", authkey=b"k").start()
    p = await rpc.aio.connect(srv.address, authkey=b"k", timeout=5)
    await p.add(1, 2)
    async with p.batch() as b: f = b.add(1, 2)
    await f

It lives here, not in ``interproc.aio``, because protocols sit above the
transports (``interproc.aio`` holds the asyncio transports and must not
import upwards).  Same wire and peers as the blocking API.
"""

from .._rpc._aio import (
    AsyncBatch as AsyncBatch,
    AsyncProxy as AsyncProxy,
    AsyncServer as Server,
    connect as connect,
)

__all__ = ["AsyncBatch", "AsyncProxy", "Server", "connect"]
