"""Listeners against hostile clients: nesting bombs, silent and trickling
handshakes, frames that announce more than they send.

The servers run in the test process (so what ``accept()``/``recv()`` raise and
allocate can be checked); the hostile clients are raw sockets and the good
clients real interproc clients in other processes.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import tracemalloc

import pytest

import interproc
from conftest import wait_for_line
from interproc import sockets
from interproc._framing import HEADER
from interproc.pipes import NamedPipe

GOOD_CLIENT = """
import sys, interproc
kw = {"authkey": sys.argv[2].encode()} if len(sys.argv) > 2 else {}
with interproc.connect(sys.argv[1], timeout=20, **kw) as ch:
    print("CONNECTED", flush=True)
    ch.send(b"good")
    print("GOT", ch.recv(timeout=20).decode(), flush=True)
"""


def _raw(lst) -> socket.socket:
    if lst.address.startswith("tcp://"):
        host, port = lst.address[len("tcp://"):].rsplit(":", 1)
        return socket.create_connection((host, int(port)), timeout=10)
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(lst.path)
    return s


def _frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


def _read_greeting(s: socket.socket) -> dict:
    head = b""
    while len(head) < 8:
        head += s.recv(8 - len(head))
    (n,) = HEADER.unpack(head)
    body = b""
    while len(body) < n:
        body += s.recv(n - len(body))
    return json.loads(body)


@pytest.fixture(params=["tcp", "tcp-authkey", "pipe"])
def listener(request, name):
    if request.param == "pipe":
        lst = NamedPipe.serve(name, handshake_timeout=30)
    else:
        kw = {"authkey": b"k"} if request.param == "tcp-authkey" else {}
        lst = sockets.listen_tcp("127.0.0.1", 0, handshake_timeout=30, **kw)
    lst.kind = request.param
    yield lst
    lst.close()


def _good_client(spawn, lst):
    args = [lst.address] + (["k"] if lst.kind == "tcp-authkey" else [])
    return spawn(GOOD_CLIENT, *args)


def test_nested_hello_is_a_protocol_error_before_any_key(listener):
    # The hostile client does not wait for the greeting: its bytes are queued.
    bad = _raw(listener)
    with bad:
        bad.sendall(_frame(b"[" * 4000))
        with pytest.raises(interproc.ProtocolError):
            listener.accept(timeout=10)
        bad2 = _raw(listener)
        with bad2:
            bad2.sendall(_frame(b'{"proto":"interproc/1","kind":{"a":[1]}}'))
            with pytest.raises(interproc.ProtocolError, match="nested"):
                listener.accept(timeout=10)


def test_silent_and_trickling_clients_do_not_stall_accept(listener, spawn, caplog):
    silent = [_raw(listener) for _ in range(3)]
    trickle = _raw(listener)
    stop = threading.Event()

    def dribble():  # one byte of a plausible hello every 100 ms, never finishing
        hello = _frame(json.dumps({"proto": "interproc/1", "kind": "socket"}).encode())
        for b in hello[:-1]:
            if stop.wait(0.1):
                return
            try:
                trickle.send(bytes([b]))
            except OSError:
                return

    t = threading.Thread(target=dribble)
    t.start()
    try:
        proc = _good_client(spawn, listener)
        # The handshake timeout is 30 s; a sequential accept would sit on the
        # silent clients first.  The good client must come out of this call.
        with listener.accept(timeout=15) as peer:
            assert peer.recv(timeout=10) == b"good"
            peer.send(b"ok")
        assert "GOT ok" in wait_for_line(proc, "GOT")
    finally:
        stop.set()
        t.join()
        for s in silent + [trickle]:
            s.close()
    # the hostile ones are still pending (not accepted, not blocking anyone)
    assert len(listener._pool) >= 1


def test_a_silent_client_is_dropped_and_logged_after_its_deadline(name, caplog):
    lst = sockets.listen_tcp("127.0.0.1", 0, handshake_timeout=0.3)
    with lst:
        silent = _raw(lst)
        with silent, caplog.at_level(logging.WARNING, logger="interproc"):
            with pytest.raises(interproc.Timeout):
                lst.accept(timeout=1.0)
            assert len(lst._pool) == 0
            assert any("dropped a connection" in r.getMessage() for r in caplog.records)
            silent.settimeout(5)
            _read_greeting(silent)
            assert silent.recv(10) == b""  # the server closed it: a clean end of stream


@pytest.mark.parametrize("kind", ["tcp", "pipe"])
def test_announced_frame_is_not_allocated_before_it_arrives(kind, name, spawn):
    lst = NamedPipe.serve(name) if kind == "pipe" else sockets.listen_tcp("127.0.0.1", 0)
    with lst:
        bad = _raw(lst)
        bad.sendall(_frame(json.dumps({"proto": "interproc/1", "kind": "pipe" if kind == "pipe" else "socket"}).encode()))
        with lst.accept(timeout=10) as peer, bad:
            bad.sendall(HEADER.pack(255 * 1024 * 1024) + b"x" * 100)
            tracemalloc.start()
            try:
                with pytest.raises(interproc.Timeout):
                    peer.recv(timeout=0.5)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert peak < 8 * 1024 * 1024, f"announcing 255 MiB made the server allocate {peak} bytes"


@pytest.mark.parametrize("codec", ["json", "msgpack"])
def test_hostile_objects_are_protocol_errors(codec, name):
    pytest.importorskip("msgpack") if codec == "msgpack" else None
    lst = sockets.listen_tcp("127.0.0.1", 0, codec=codec)
    with lst:
        bad = _raw(lst)
        bad.sendall(_frame(b'{"proto":"interproc/1","kind":"socket"}'))
        with lst.accept(timeout=10) as peer, bad:
            bombs = [b"[" * 100000] if codec == "json" else [b"\x91" * 100000, b"\x81\x91\x01\x01", b"\x81\x81\x01\x01\x01"]
            for bomb in bombs:
                bad.sendall(_frame(bomb))
                with pytest.raises(interproc.ProtocolError):
                    peer.recv_obj(timeout=10)


def test_asyncio_listener_does_not_stall_on_silent_clients(name, spawn):
    import asyncio

    from interproc import aio

    async def main():
        lst = await aio.listen("tcp://127.0.0.1:0", handshake_timeout=30)
        async with lst:
            host, port = lst.address[len("tcp://"):].rsplit(":", 1)
            silent = [socket.create_connection((host, int(port)), timeout=10) for _ in range(3)]
            try:
                await asyncio.sleep(0.2)  # the silent ones are accepted first
                proc = spawn(GOOD_CLIENT, lst.address)
                peer = await lst.accept(timeout=15)
                async with peer:
                    assert await peer.recv(timeout=10) == b"good"
                    await peer.send(b"ok")
                return proc
            finally:
                for s in silent:
                    s.close()

    proc = asyncio.run(main())
    assert "GOT ok" in wait_for_line(proc, "GOT")


def test_a_client_of_a_full_backlog_gets_a_clean_error(name):
    import asyncio
    import os
    import shutil

    from interproc import aio
    from transport_helpers import short_tmpdir

    tmp = short_tmpdir()
    lst = sockets.listen_unix(os.path.join(tmp, "s"), backlog=1)
    raws = []
    try:
        for _ in range(4):  # fill the backlog (accept() is never called)
            s = socket.socket(socket.AF_UNIX)
            s.setblocking(False)
            try:
                s.connect(lst.path if hasattr(lst, "path") else os.path.join(tmp, "s"))
            except BlockingIOError:
                s.close()
                continue
            raws.append(s)
        with pytest.raises(interproc.Timeout, match="busy|in time"):
            sockets.connect_unix(os.path.join(tmp, "s"), timeout=0.5)

        async def main():
            with pytest.raises(interproc.Timeout):
                await aio.connect(f"unix://{tmp}/s", timeout=0.5)

        asyncio.run(main())
    finally:
        for s in raws:
            s.close()
        lst.close()
        shutil.rmtree(tmp, ignore_errors=True)


# An honest client that takes its time: it answers each handshake frame after
# 0.5 s, so its hello arrives while the server is not inside accept().
SLOW_CLIENT = """
import socket, sys, time
from interproc._framing import HEADER
from interproc._handshake import ClientHandshake
kind, where = sys.argv[1], sys.argv[2]
if kind == "tcp":
    host, port = where.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=20)
else:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(20)
    s.connect(where)
def exact(n):
    data = b""
    while len(data) < n:
        more = s.recv(n - len(data))
        assert more, "the server closed the connection"
        data += more
    return data
def frame():
    (n,) = HEADER.unpack(exact(HEADER.size))
    return exact(n)
hs = ClientHandshake(kind="pipe" if kind == "pipe" else "socket", what="slow client")
while not hs.done:
    reply = hs.receive(frame())
    if reply is not None:
        time.sleep(0.5)
        s.sendall(HEADER.pack(len(reply)) + reply)
s.sendall(HEADER.pack(4) + b"good")
print("GOT", frame().decode(), flush=True)
"""


def _echo(ch):
    for msg in ch:
        ch.send(msg.upper())


def _where(lst) -> str:
    return lst.address[len("tcp://"):] if lst.address.startswith("tcp://") else lst.path


@pytest.mark.parametrize("kind", ["tcp", "pipe"])
def test_serve_answers_a_good_client_beside_silent_ones(kind, name, spawn):
    # interproc.serve waits on the listener's fileno() and then calls
    # accept(timeout=0): the descriptor must also fire for handshakes in
    # progress, or a client whose hello comes later is never finished.
    lst = NamedPipe.serve(name, handshake_timeout=30) if kind == "pipe" else \
        sockets.listen_tcp("127.0.0.1", 0, handshake_timeout=30)
    silent = [_raw(lst) for _ in range(3)]
    try:
        with interproc.serve(lst, _echo):
            fast = spawn(GOOD_CLIENT, f"pipe://{name}" if kind == "pipe" else lst.address)
            slow = spawn(SLOW_CLIENT, kind, _where(lst))
            assert "GOT GOOD" in wait_for_line(fast, "GOT", timeout=20)
            assert "GOT GOOD" in wait_for_line(slow, "GOT", timeout=20)
            assert fast.wait(timeout=10) == 0 and slow.wait(timeout=10) == 0
    finally:
        for s in silent:
            s.close()


def test_wait_then_accept_without_waiting_completes_a_handshake(name, spawn):
    import time

    lst = sockets.listen_tcp("127.0.0.1", 0, handshake_timeout=30)
    with lst:
        silent = _raw(lst)
        proc = spawn(SLOW_CLIENT, "tcp", _where(lst))
        end = time.monotonic() + 20
        peer = None
        while peer is None and time.monotonic() < end:
            if interproc.wait([lst], timeout=max(0.0, end - time.monotonic())):
                try:
                    peer = lst.accept(timeout=0)
                except interproc.Timeout:
                    pass  # a step of a handshake, not yet a channel
        assert peer is not None, "wait() + accept(timeout=0) never completed the slow client's handshake"
        with peer, silent:
            assert peer.recv(timeout=10) == b"good"
            peer.send(b"ok")
        assert "GOT ok" in wait_for_line(proc, "GOT")


def test_serve_frees_a_pipe_instance_held_by_a_silent_client(name, spawn, caplog):
    # One instance, taken by a client that never says hello: serve() must
    # drop it at its deadline although no descriptor fires (wake_after).
    lst = NamedPipe.serve(name, max_instances=1, handshake_timeout=0.5)
    silent = _raw(lst)
    try:
        with caplog.at_level(logging.WARNING, logger="interproc"), interproc.serve(lst, _echo):
            proc = spawn(GOOD_CLIENT, f"pipe://{name}")
            assert "GOT GOOD" in wait_for_line(proc, "GOT", timeout=20)
            assert proc.wait(timeout=10) == 0
        assert any("dropped a connection" in r.getMessage() for r in caplog.records)
    finally:
        silent.close()


FLOOD = """
import sys, interproc
with interproc.connect(sys.argv[1], timeout=20) as ch:
    for i in range(48):
        ch.send(bytes([i]) * (1 << 20), timeout=30)  # waits while the server does not read
    print("SENT", flush=True)
    ch.recv(timeout=30)
"""


def test_asyncio_channel_buffers_a_bounded_number_of_bytes_for_a_fast_peer(spawn):
    # 48 MiB in 1 MiB frames that the application does not read yet: the
    # asyncio protocol stops reading at a few MiB of whole unread frames
    # (before: at 256 frames, whatever their size) and the kernel's flow
    # control holds the sender back.  Everything still arrives, in order.
    import asyncio

    from interproc import aio

    async def main():
        lst = await aio.listen("tcp://127.0.0.1:0")
        async with lst:
            proc = spawn(FLOOD, lst.address)
            peer = await lst.accept(timeout=20)
            async with peer:
                tracemalloc.start()
                try:
                    await asyncio.sleep(1.5)  # the client floods; nobody reads
                    _, peak = tracemalloc.get_traced_memory()
                finally:
                    tracemalloc.stop()
                for i in range(48):
                    msg = await peer.recv(timeout=30)
                    assert len(msg) == 1 << 20 and msg[:1] == bytes([i]) and msg[-1:] == bytes([i])
                await peer.send(b"done")
            return proc, peak

    proc, peak = asyncio.run(main())
    assert "SENT" in wait_for_line(proc, "SENT", timeout=20)
    assert proc.wait(timeout=20) == 0
    assert peak < 16 * 1024 * 1024, f"an unread fast peer made the asyncio channel hold {peak} bytes"
