"""interproc.aio: asyncio pipes, named pipes and sockets, against sync peers in other processes."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import sys

import pytest

import interproc
from conftest import SRC, wait_for_line
from interproc import aio
from interproc._framing import HEADER
from interproc.pipes import popen_with_pipe

SYNC_ECHO = """
import sys, threading, interproc
kw = {"authkey": sys.argv[2].encode()} if len(sys.argv) > 2 else {}
lst = interproc.listen(sys.argv[1], **kw)
print("ADDRESS", lst.address, flush=True)
def serve(ch):
    with ch:
        for msg in ch:
            ch.send(msg)
try:
    while True:
        threading.Thread(target=serve, args=(lst.accept(),), daemon=True).start()
finally:
    lst.close()
"""


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 50))


@pytest.fixture(params=["tcp", "pipe", "unix"])
def address(request, name):
    if request.param == "tcp":
        return "tcp://127.0.0.1:0"
    if request.param == "pipe":
        return f"pipe://{name}"
    path = os.path.join("/tmp", f"ipt-{name}.sock")
    return f"unix://{path}"


def test_async_client_against_sync_server_process(spawn, address):
    proc = spawn(SYNC_ECHO, address)
    real = wait_for_line(proc, "ADDRESS").split()[1]

    async def main():
        ch = await aio.connect(real, timeout=10)
        async with ch:
            for size in (0, 1, 64 * 1024, 16 * 1024 * 1024):
                data = os.urandom(size)
                await ch.send(data)
                assert await ch.recv(timeout=20) == data
            await ch.send_obj({"k": [1, 2]})
            assert await ch.recv_obj(timeout=10) == {"k": [1, 2]}
            with pytest.raises(interproc.Timeout):
                await ch.recv(timeout=0.05)

            # many messages with a concurrent reader: no deadlock, order kept
            async def reader():
                return [await ch.recv(timeout=20) for _ in range(2000)]

            task = asyncio.ensure_future(reader())
            for i in range(2000):
                await ch.send(i.to_bytes(4, "big") * (i % 50))
            got = await task
            assert got == [i.to_bytes(4, "big") * (i % 50) for i in range(2000)]

    run(main())
    proc.kill()
    proc.wait(10)
    # SIGKILL leaves the socket file behind, as a crash would: remove it
    if address.startswith("pipe://"):
        from interproc._naming import object_path

        os.unlink(object_path("pipe", address[len("pipe://"):]))
    elif address.startswith("unix://"):
        os.unlink(address[len("unix://"):])


CLIENT = """
import sys, interproc
with interproc.connect(sys.argv[1], timeout=10) as ch:
    for i in range(200):
        ch.send(b"%d" % i)
    ch.send(b"x" * (4 * 1024 * 1024))
    print(ch.recv(timeout=10).decode(), flush=True)
"""


def test_async_server_with_client_processes(spawn, address):
    async def main():
        lst = await aio.listen(address)
        async with lst:
            procs = [spawn(CLIENT, lst.address) for _ in range(4)]

            async def handle(ch):
                async with ch:
                    msgs = [await ch.recv(timeout=20) for _ in range(201)]
                    assert msgs[:200] == [b"%d" % i for i in range(200)]
                    assert msgs[200] == b"x" * (4 * 1024 * 1024)
                    if address.startswith(("pipe", "unix")):
                        assert ch.peer_credentials.uid == os.getuid()
                    await ch.send(b"ok from asyncio")
                    with pytest.raises(interproc.ChannelClosed):
                        await ch.recv(timeout=20)

            chans = [await lst.accept(timeout=20) for _ in procs]
            await asyncio.gather(*(handle(ch) for ch in chans))
            return procs

    procs = run(main())
    for p in procs:
        out, err = p.communicate(timeout=20)
        assert out.strip() == "ok from asyncio", err


def test_async_authkey_and_refusal():
    async def main():
        lst = await aio.listen("tcp://127.0.0.1:0", authkey=b"k")
        async with lst:
            acc = asyncio.ensure_future(lst.accept(timeout=10))
            with pytest.raises(interproc.PermissionDenied):
                await aio.connect(lst.address, authkey=b"wrong", timeout=10)
            with pytest.raises(interproc.PermissionDenied):
                await acc
            acc = asyncio.ensure_future(lst.accept(timeout=10))
            ch = await aio.connect(lst.address, authkey=b"k", codec="pickle", timeout=10)
            peer = await acc
            assert ch.authenticated and peer.authenticated and peer.trusted
            peer.set_codec("pickle")  # allowed: the peer proved the authkey
            await ch.send_obj({1, 2})
            assert await peer.recv_obj(timeout=10) == {1, 2}
            await ch.aclose()
            await peer.aclose()
        with pytest.raises(interproc.NotFound):
            await aio.connect(lst.address)

    run(main())


def test_async_recv_protocol_error_keeps_listener_serving(name):
    async def main():
        lst = await aio.listen(f"pipe://{name}")
        async with lst:
            acc = asyncio.ensure_future(lst.accept(timeout=10))
            raw = socket.socket(socket.AF_UNIX)
            raw.setblocking(False)
            loop = asyncio.get_running_loop()
            await loop.sock_connect(raw, lst._sync.path)
            (n,) = HEADER.unpack(await loop.sock_recv(raw, 8))
            await loop.sock_recv(raw, n)
            await loop.sock_sendall(raw, HEADER.pack(11) + b'{"kind":"pipe"}'[:11])  # not JSON
            with pytest.raises(interproc.ProtocolError):
                await acc
            raw.close()
            acc = asyncio.ensure_future(lst.accept(timeout=10))
            good = await aio.connect(lst.address, timeout=10)
            peer = await acc
            await good.send(b"fine")
            assert await peer.recv(timeout=5) == b"fine"
            # garbage after a good handshake: ProtocolError from recv, channel closed
            peer._proto.data_received(random.Random(3).randbytes(64))
            with pytest.raises(interproc.ProtocolError):
                await peer.recv(timeout=5)
            assert peer.closed
            await good.aclose()

    run(main())


def test_async_pipe_from_child():
    code = (
        "import asyncio\nfrom interproc import aio\n"
        "async def main():\n"
        "    w = await aio.pipe_from_env()\n"
        "    for i in range(100):\n"
        "        await w.send(b'%d' % i)\n"
        "    await w.aclose()\n"
        "asyncio.run(main())\n"
    )
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc, r = popen_with_pipe([sys.executable, "-c", code], child="write", env=env)

    async def main():
        ch = await aio.from_pipe_end(r)
        async with ch:
            return [m async for m in ch]

    try:
        assert run(main()) == [b"%d" % i for i in range(100)]
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_async_named_pipe_instances(name):
    async def main():
        srv = await aio.NamedPipe.serve(name, max_instances=1)
        async with srv:
            acc = asyncio.ensure_future(srv.accept(timeout=10))
            a = await aio.NamedPipe.connect(name, timeout=10)
            pa = await acc
            acc2 = asyncio.ensure_future(srv.accept(timeout=10))
            with pytest.raises(interproc.Timeout, match="no free instance"):
                await aio.NamedPipe.connect(name, timeout=0.3)
            await pa.aclose()  # frees the instance
            b = await aio.NamedPipe.connect(name, timeout=10)
            pb = await acc2
            await b.send(b"second")
            assert await pb.recv(timeout=5) == b"second"
            for ch in (a, b, pb):
                await ch.aclose()

    run(main())


def test_async_byte_mode_pipe_against_sync_process(spawn, name):
    proc = spawn(
        "import sys\nfrom interproc.pipes import NamedPipe\n"
        "srv = NamedPipe.serve(sys.argv[1], mode='byte')\nprint('READY', flush=True)\n"
        "with srv.accept(timeout=20) as ch:\n"
        "    data = b''\n"
        "    while len(data) < 300000:\n"
        "        data += ch.read(65536, timeout=20)\n"
        "    ch.write(data[::-1])\n"
        "srv.close()\n",
        name,
    )
    wait_for_line(proc, "READY")
    payload = os.urandom(300000)

    async def main():
        ch = await aio.NamedPipe.connect(name, timeout=10)
        async with ch:
            assert ch.mode == "byte"
            for i in range(0, len(payload), 7000):
                await ch.write(payload[i : i + 7000])
            got = b""
            while len(got) < len(payload):
                chunk = await ch.read(-1, timeout=20)
                assert chunk
                got += chunk
            assert got == payload[::-1]
            assert await ch.read(10, timeout=20) == b""  # the server closed: end of stream

    run(main())
    proc.wait(10)
