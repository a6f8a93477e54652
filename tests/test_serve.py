"""interproc.serve / interproc.aio.serve: many clients in real processes, a
handler that raises, graceful shutdown with clients connected, Ctrl-C."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time

import pytest

import interproc
import interproc.aio
from conftest import wait_for_line

# A client process: THREADS threads, each its own connection, ROUNDS request/replies.
CLIENTS = """
import sys, threading, interproc
addr, threads, rounds, tag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ok = []
def one(i):
    with interproc.connect(addr, timeout=20) as ch:
        for r in range(rounds):
            msg = f"{tag}-{i}-{r}".encode()
            ch.send(msg)
            assert ch.recv(timeout=20) == msg.upper(), "wrong echo"
    ok.append(i)
ts = [threading.Thread(target=one, args=(i,)) for i in range(threads)]
[t.start() for t in ts]; [t.join() for t in ts]
print("DONE", len(ok), flush=True)
"""


def _upper(ch):
    for msg in ch:
        ch.send(msg.upper())


def _address(scheme, name, tmp):
    return {"unix": f"unix://{tmp}/{name}.sock", "tcp": "tcp://127.0.0.1:0", "shm": f"shm://{name}",
            "pipe": f"pipe://{name}"}[scheme]


@pytest.mark.parametrize("scheme", ["unix", "tcp", "shm"])
@pytest.mark.parametrize("max_workers", [None, 8])
def test_64_concurrent_clients_in_4_processes(scheme, max_workers, spawn, name, tmp_path):
    served_by = set()

    def handler(ch):
        served_by.add(threading.current_thread().name)
        _upper(ch)

    with interproc.serve(interproc.listen(_address(scheme, name, tmp_path)), handler,
                         max_workers=max_workers) as server:
        procs = [spawn(CLIENTS, server.address, "16", "5", f"p{k}") for k in range(4)]
        outs = [p.communicate(timeout=50) for p in procs]
        for p, (out, err) in zip(procs, outs):
            assert p.returncode == 0, err
            assert out.strip() == "DONE 16"
        assert server.served == 64
    assert server.closed and server.connections == 0
    if max_workers:
        assert len(served_by) <= max_workers  # a pool, not a thread each
    else:
        assert len(served_by) == 64


def test_a_handler_that_raises_closes_only_its_connection(spawn, name, caplog):
    def handler(ch):
        for msg in ch:
            if msg == b"boom":
                raise RuntimeError("the handler failed on purpose")
            ch.send(msg.upper())

    code = """
import sys, interproc
ch = interproc.connect(sys.argv[1], timeout=10)
ch.send(b"boom")
try:
    ch.recv(timeout=10)
except interproc.ChannelClosed:
    print("CLOSED", flush=True)
"""
    with caplog.at_level(logging.ERROR, logger="interproc"):
        with interproc.serve(interproc.listen(f"shm://{name}"), handler) as server:
            assert spawn.run(code, server.address).strip() == "CLOSED"
            out = spawn.run(CLIENTS, server.address, "2", "3", "after")  # the server goes on
            assert out.strip() == "DONE 2"
    failures = [r for r in caplog.records if r.name == "interproc" and r.exc_info]
    assert len(failures) == 1
    assert "the handler failed on purpose" in str(failures[0].exc_info[1])


def test_shutdown_with_clients_connected(spawn, name, tmp_path):
    started = threading.Event()

    def handler(ch):
        started.set()
        _upper(ch)  # blocks in recv: the client never closes

    code = """
import sys, interproc
ch = interproc.connect(sys.argv[1], timeout=10)
ch.send(b"hi"); assert ch.recv(timeout=10) == b"HI"
print("CONNECTED", flush=True)
try:
    ch.recv(timeout=20)
except interproc.ChannelClosed:
    print("SERVER-WENT", flush=True)
"""
    addr = _address("unix", name, tmp_path)
    server = interproc.serve(interproc.listen(addr), handler)
    clients = [spawn(code, server.address) for _ in range(3)]
    for c in clients:
        assert wait_for_line(c, "CONNECTED")
    assert started.wait(10) and server.connections == 3
    server.close(timeout=0.2)  # the handlers do not finish by themselves: their connections are closed
    assert server.closed and server.connections == 0
    for c in clients:
        assert wait_for_line(c, "SERVER-WENT")
        assert c.wait(10) == 0
    with pytest.raises(interproc.NotFound):  # the address was released
        interproc.connect(addr)
    server.close()  # idempotent


def test_pool_shutdown_closes_queued_connections_too(spawn, name, tmp_path):
    """With max_workers=2 and 4 idle clients, two wait in the pool's queue;
    close() ends the running two and closes the queued two as well."""
    code = """
import sys, interproc
ch = interproc.connect(sys.argv[1], timeout=10)
print("CONNECTED", flush=True)
try:
    ch.recv(timeout=20)
except interproc.ChannelClosed:
    print("SERVER-WENT", flush=True)
"""
    server = interproc.serve(interproc.listen(f"unix://{tmp_path}/{name}.sock"), _upper, max_workers=2)
    clients = [spawn(code, server.address) for _ in range(4)]
    for c in clients:
        assert wait_for_line(c, "CONNECTED")
    deadline = time.monotonic() + 10
    while server.served < 4:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    server.close(timeout=0.2)
    assert server.closed and server.connections == 0
    for c in clients:
        assert wait_for_line(c, "SERVER-WENT")
        assert c.wait(10) == 0


def test_ctrl_c_stops_a_server_process_cleanly(spawn, name):
    code = """
import sys, interproc
def handler(ch):
    for msg in ch:
        ch.send(msg)
server = interproc.serve(interproc.listen(sys.argv[1]), handler)
print("READY", flush=True)
server.serve_forever()
print("STOPPED", server.closed, server.connections, flush=True)
"""
    proc = spawn(code, f"shm://{name}")
    assert wait_for_line(proc, "READY")
    ch = interproc.connect(f"shm://{name}", timeout=10)
    ch.send(b"x")
    assert ch.recv(timeout=10) == b"x"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "STOPPED True 0" in out and "Traceback" not in err
    with pytest.raises(interproc.ChannelClosed):
        ch.recv(timeout=10)
    ch.close()


# -- asyncio -----------------------------------------------------------------------

def test_aio_serve_many_clients_a_failing_handler_and_shutdown(spawn, name, tmp_path, caplog):
    async def handler(ch):
        async for msg in ch:
            if msg == b"boom":
                raise ValueError("async handler failed on purpose")
            await ch.send(msg.upper())

    async def main():
        listener = await interproc.aio.listen(f"unix://{tmp_path}/{name}.sock")
        server = await interproc.aio.serve(listener, handler)
        procs = [spawn(CLIENTS, server.address, "16", "3", f"a{k}") for k in range(4)]
        loop = asyncio.get_running_loop()
        outs = await asyncio.gather(*(loop.run_in_executor(None, p.communicate, None, 50) for p in procs))
        for p, (out, err) in zip(procs, outs):
            assert p.returncode == 0, err
            assert out.strip() == "DONE 16"
        bad = await interproc.aio.connect(server.address, timeout=5)
        await bad.send(b"boom")
        with pytest.raises(interproc.ChannelClosed):
            await bad.recv(timeout=10)
        await bad.aclose()
        idle = await interproc.aio.connect(server.address, timeout=5)
        await idle.send(b"x")
        assert await idle.recv(timeout=5) == b"X"
        await server.aclose(timeout=0.2)  # the idle client's handler is cancelled
        assert server.closed and server.connections == 0
        with pytest.raises(interproc.ChannelClosed):
            await idle.recv(timeout=10)
        await idle.aclose()
        assert server.served == 66

    with caplog.at_level(logging.ERROR, logger="interproc"):
        asyncio.run(main())
    failures = [r for r in caplog.records if r.name == "interproc" and r.exc_info]
    assert len(failures) == 1 and "on purpose" in str(failures[0].exc_info[1])


def test_aio_serve_forever_cancelled_by_ctrl_c_in_a_process(spawn, name, tmp_path):
    code = """
import asyncio, sys, interproc.aio
async def handler(ch):
    async for msg in ch:
        await ch.send(msg)
async def main():
    server = await interproc.aio.serve(await interproc.aio.listen(sys.argv[1]), handler)
    print("READY", flush=True)
    try:
        await server.serve_forever()
    finally:
        print("STOPPED", server.closed, flush=True)
try:
    asyncio.run(main())
except KeyboardInterrupt:
    print("INTERRUPTED", flush=True)
"""
    addr = f"unix://{tmp_path}/{name}.sock"
    proc = spawn(code, addr)
    assert wait_for_line(proc, "READY")
    with interproc.connect(addr, timeout=10) as ch:
        ch.send(b"x")
        assert ch.recv(timeout=10) == b"x"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        assert "STOPPED True" in out and "INTERRUPTED" in out, err
        with pytest.raises(interproc.ChannelClosed):
            ch.recv(timeout=10)
    assert not os.path.exists(f"{tmp_path}/{name}.sock")


def test_serve_checks_its_arguments(name):
    with interproc.listen(f"shm://{name}") as lst:
        with pytest.raises(TypeError, match="callable"):
            interproc.serve(lst, "not a function")
        with pytest.raises(ValueError, match="max_workers"):
            interproc.serve(lst, print, max_workers=0)


def test_one_loop_serves_shm_and_socket_clients_without_a_thread_per_shm_channel(spawn, name, tmp_path):
    """8 shm:// clients and 8 socket clients (real processes) on one event loop;
    the shm waits go through the doorbell descriptor, so idle shm connections
    cost no threads."""
    client = """
import sys, interproc
ch = interproc.connect(sys.argv[1], timeout=20)
ch.send(b"hello"); assert ch.recv(timeout=20) == b"HELLO"
print("CONNECTED", flush=True)
sys.stdin.readline()                       # stay connected (the server waits in recv)
ch.send(b"bye"); assert ch.recv(timeout=20) == b"BYE"
print("DONE", flush=True)
"""
    import subprocess
    import threading

    async def handler(ch):
        async for msg in ch:
            await ch.send(msg.upper())

    async def main():
        base = threading.active_count()
        shm = await interproc.aio.serve(await interproc.aio.listen(f"shm://{name}"), handler)
        unix = await interproc.aio.serve(await interproc.aio.listen(f"unix://{tmp_path}/{name}.sock"), handler)
        tcp = await interproc.aio.serve(await interproc.aio.listen("tcp://127.0.0.1:0"), handler)
        addrs = [shm.address] * 8 + [unix.address] * 4 + [tcp.address] * 4
        procs = [spawn(client, a, stdin=subprocess.PIPE) for a in addrs]
        loop = asyncio.get_running_loop()
        for p in procs:
            assert await loop.run_in_executor(None, wait_for_line, p, "CONNECTED")
        while shm.connections < 8:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # every handler is now waiting in recv
        extra = threading.active_count() - base
        assert extra < 8, f"{extra} threads for 8 idle shm:// connections"
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in procs:
            assert await loop.run_in_executor(None, wait_for_line, p, "DONE")
        for server in (shm, unix, tcp):
            await server.aclose()
        assert (shm.served, unix.served, tcp.served) == (8, 4, 4)
        for p in procs:
            p.stdin.close()
            assert await loop.run_in_executor(None, p.wait, 10) == 0

    asyncio.run(main())
