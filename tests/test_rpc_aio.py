"""interproc.rpc.aio across real processes: an asyncio server with blocking clients,
and an asyncio proxy against a blocking server, over tcp:// and shm://."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest

import interproc
from interproc import rpc
from interproc.rpc import aio as rpc_aio

sys.path.insert(0, os.path.dirname(__file__))
from conftest import wait_for_line  # noqa: E402

ASYNC_SERVER = r"""
import asyncio, sys
from interproc.rpc import aio as rpc_aio

class Calc:
    def add(self, a, b):
        return a + b
    async def slow(self, seconds):
        await asyncio.sleep(seconds)
        return seconds
    def lookup(self, key):
        return {}[key]

async def main():
    srv = await rpc_aio.Server(Calc(), sys.argv[1]).start()
    print("ADDRESS", srv.address, flush=True)
    await srv.serve_forever()

asyncio.run(main())
"""

BLOCKING_SERVER = ASYNC_SERVER[: ASYNC_SERVER.index("async def main")] + r"""
from interproc import rpc
srv = rpc.Server(Calc(), sys.argv[1])
print("ADDRESS", srv.address, flush=True)
srv.serve_forever()
"""

CLIENT = r"""
import sys
from interproc import rpc
with rpc.connect(sys.argv[1], timeout=20) as p:
    for i in range(200):
        assert p.add(i, 1) == i + 1
    print("OK", flush=True)
"""


def _gc(kind: str) -> None:
    if kind == "shm":
        from interproc import _registry

        _registry.collect()


@pytest.mark.parametrize("kind", ["tcp", "shm"])
def test_asyncio_server_with_blocking_clients(spawn, name, kind):
    address = "tcp://127.0.0.1:0" if kind == "tcp" else f"shm://{name}"
    srv = spawn(ASYNC_SERVER, address)
    served = wait_for_line(srv, "ADDRESS").split()[1]
    clients = [spawn(CLIENT, served) for _ in range(4)]
    for c in clients:
        out, err = c.communicate(timeout=60)
        assert c.returncode == 0 and out.startswith("OK"), err
    with rpc.connect(served, timeout=20) as p:
        slow = p.submit("slow", 0.5)
        assert p.add(1, 2) == 3 and not slow.done()  # out of order on one connection
        assert slow.result() == 0.5
        with pytest.raises(interproc.RemoteError) as info:
            p.lookup("x")
        assert info.value.remote_type == "KeyError"
        assert p.add(2, 2) == 4
    srv.kill()
    srv.wait(10)
    _gc(kind)


@pytest.mark.parametrize("kind", ["tcp", "shm"])
def test_asyncio_proxy_against_a_blocking_server(spawn, name, kind):
    address = "tcp://127.0.0.1:0" if kind == "tcp" else f"shm://{name}"
    srv = spawn(BLOCKING_SERVER, address)
    served = wait_for_line(srv, "ADDRESS").split()[1]

    async def main() -> None:
        p = await rpc_aio.connect(served, timeout=20)
        try:
            results = await asyncio.gather(*(p.add(i, i) for i in range(100)))
            assert results == [2 * i for i in range(100)]
            async with p.batch() as b:
                f = b.add(1, 2)
                g = b.lookup("nope")
            assert await f == 3
            with pytest.raises(interproc.RemoteError):
                await g
            with pytest.raises(interproc.Timeout):
                await p.call("slow", 0.5, timeout=0.05)
            await p.notify("add", 1, 1)
            pending = asyncio.ensure_future(p.slow(30))
            await asyncio.sleep(0.2)
            os.kill(srv.pid, signal.SIGKILL)
            with pytest.raises(interproc.ChannelClosed):
                await asyncio.wait_for(pending, 20)
        finally:
            await p.close()

    asyncio.run(main())
    srv.wait(10)
    _gc(kind)


def test_asyncio_plain_json_rpc_both_ends(spawn):
    """An asyncio server on jsonrpc+tcp:// answers raw lines; the asyncio proxy speaks it too."""
    import json
    import socket

    async def main() -> None:
        class Spec:
            def subtract(self, minuend, subtrahend):
                return minuend - subtrahend

            async def later(self, x):
                await asyncio.sleep(0.05)
                return x

        async with rpc_aio.Server(Spec(), "jsonrpc+tcp://127.0.0.1:0") as srv:
            assert srv.address.startswith("jsonrpc+tcp://127.0.0.1:")
            host, port = srv.address.removeprefix("jsonrpc+tcp://").rsplit(":", 1)

            def raw() -> list:
                with socket.create_connection((host, int(port)), timeout=10) as s:
                    f = s.makefile("rwb")
                    f.write(b'[{"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":1},'
                            b'{"jsonrpc":"2.0","method":"subtract","params":{"subtrahend":1,"minuend":2}}]\n')
                    f.flush()
                    return json.loads(f.readline())

            assert await asyncio.to_thread(raw) == [{"jsonrpc": "2.0", "result": 19, "id": 1}]
            p = await rpc_aio.connect(srv.address, timeout=10)
            try:
                assert p.codec == "json"
                assert await asyncio.gather(p.later(1), p.subtract(5, 3)) == [1, 2]
            finally:
                await p.close()

    asyncio.run(main())
