"""objects.aio.Server (asyncio) in a real server process, with blocking and asyncio
clients in other processes: the same wire, marshalling, references and leases as the
blocking server; `interproc.aio.objects` / `interproc.aio.rpc` reach the asyncio APIs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest

from interproc import RemoteError, objects

sys.path.insert(0, os.path.dirname(__file__))
from conftest import wait_for_line  # noqa: E402
from test_objects import CLIENT, SERVER, Visitor, _wait_deleted  # noqa: E402
from transport_helpers import short_tmpdir  # noqa: E402

# The classes of the blocking test server, served by the asyncio server instead.
ASYNC_SERVER = SERVER[: SERVER.index("opts = ")] + r"""
import asyncio

async def avisit(self, visitor, n):
    # On an asyncio server the proxies a method receives are asyncio proxies: awaited.
    return [await visitor.seen(self._radius * i) for i in range(n)]

Circle.avisit = avisit

async def main():
    from interproc.aio import objects as aobjects
    opts = {"authkey": b"secret"} if kind == "authkey" else {}
    srv = aobjects.Server(address, ping_interval=0.2, missed_pings=3, **opts)
    srv.register("Shapes.Circle", Circle, interfaces=[IShape])
    await srv.start()
    print("ADDRESS", srv.address, flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if line.strip() == "live":
            print("LIVE", srv.live, flush=True)
        else:
            break
    await srv.close()
    print("CLOSED", flush=True)

asyncio.run(main())
"""


@pytest.fixture(params=["unix", "tcp-authkey", "shm"])
def aserver(request, name, spawn, tmp_path):
    kind = request.param
    address = {"unix": f"unix://{short_tmpdir()}/aobjects.sock", "tcp-authkey": "tcp://127.0.0.1:0",
               "shm": f"shm://{name}"}[kind]
    mode = "authkey" if kind == "tcp-authkey" else "plain"
    log = str(tmp_path / "deleted.log")
    proc = spawn(ASYNC_SERVER, address, mode, log, stdin=subprocess.PIPE)
    served = wait_for_line(proc, "ADDRESS").split()[1]
    try:
        yield served, mode, log, proc
    finally:
        try:
            proc.stdin.write("quit\n")
            proc.stdin.flush()
        except OSError:
            pass
        wait_for_line(proc, "CLOSED")
        proc.wait(10)
        if kind == "shm":
            from interproc import _registry

            _registry.collect()


def _live(proc) -> int:
    proc.stdin.write("live\n")
    proc.stdin.flush()
    return int(wait_for_line(proc, "LIVE").split()[1])


def test_blocking_client_against_the_asyncio_server(aserver):
    address, mode, log, proc = aserver
    opts = {"authkey": b"secret"} if mode == "authkey" else {}
    with objects.connect(address, timeout=10, **opts) as conn:
        c = conn.create("Shapes.Circle", 2.0, "a")
        assert c.area() == 12.0 and c.radius == 2.0
        c.radius = 3.0
        assert c.radius == 3.0
        g = c.grown("g")  # by reference: a proxy to a new server-side object
        assert g.radius == 6.0 and c.same(c) and not c.same(g)
        v = Visitor()
        assert c.avisit(v, 3) == ["saw 0.0", "saw 3.0", "saw 6.0"] and v.got == [0.0, 3.0, 6.0]  # callbacks
        with pytest.raises(RemoteError) as info:
            c.lookup("missing")
        assert info.value.remote_type == "KeyError"
        with pytest.raises(objects.NoInterface):
            c.query_interface("IOther")
        assert _live(proc) == 2
        g.close()
        assert _wait_deleted(log, "g")
        c.close()
        assert _wait_deleted(log, "a")
    assert _live(proc) == 0


def test_asyncio_client_against_the_asyncio_server(aserver):
    address, mode, log, proc = aserver
    opts = {"authkey": b"secret"} if mode == "authkey" else {}

    async def main():
        from interproc.aio import objects as aobjects

        async with await aobjects.connect(address, timeout=10, **opts) as conn:
            c = await conn.create("Shapes.Circle", 1.0, "b")
            assert await c.area() == 3.0
            await c.set("radius", 2.0)
            assert await c.radius == 2.0
            c.close()

    asyncio.run(main())
    assert _wait_deleted(log, "b")


def test_killed_client_loses_its_objects_on_the_asyncio_server(aserver, spawn):
    address, mode, log, proc = aserver
    child = spawn(CLIENT, address, mode, "killed")
    pid = int(wait_for_line(child, "HOLDING").split()[1])
    assert _live(proc) == 1
    os.kill(pid, signal.SIGKILL)
    child.wait(10)
    assert _wait_deleted(log, "killed")
    assert _live(proc) == 0


def test_silent_client_loses_its_objects_after_the_lease(aserver, spawn):
    address, mode, log, proc = aserver
    child = spawn(CLIENT, address, mode, "stopped")
    pid = int(wait_for_line(child, "HOLDING").split()[1])
    os.kill(pid, signal.SIGSTOP)
    try:
        assert _wait_deleted(log, "stopped")
        assert child.poll() is None  # connection still open: the lease released it
    finally:
        os.kill(pid, signal.SIGKILL)
        os.kill(pid, signal.SIGCONT)
        child.wait(10)


def test_interproc_aio_reaches_rpc_and_objects():
    import interproc.aio
    import interproc.objects.aio
    import interproc.rpc.aio
    from interproc.aio import objects as aobjects, rpc as arpc

    assert arpc is interproc.rpc.aio and aobjects is interproc.objects.aio
    assert interproc.aio.rpc.Server is interproc.rpc.aio.Server
    with pytest.raises(AttributeError):
        interproc.aio.no_such_thing  # noqa: B018
