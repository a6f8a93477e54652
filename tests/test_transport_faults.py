"""Faults on framed transports: bad bytes, truncation, SIGKILL mid-message, many clients.

Servers run in the test process so the errors their ``accept()``/``recv()``
raise can be checked; misbehaving clients are raw sockets speaking bytes
directly, well-behaved ones are real interproc clients (often other processes).
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import interproc
from conftest import SRC, wait_for_line
from interproc import sockets
from interproc._framing import HEADER, TruncatedMessage
from interproc.pipes import NamedPipe, popen_with_pipe
from transport_helpers import accept_and_connect


class Server:
    """A TCP or named-pipe server in this process, plus raw and proper clients for it."""

    def __init__(self, kind: str, name: str) -> None:
        self.kind = kind
        if kind == "tcp":
            self.lst = sockets.listen_tcp("127.0.0.1", 0)
            self.port = int(self.lst.address.rsplit(":", 1)[1])
        else:
            self.lst = NamedPipe.serve(name, max_instances=64)
            self.name = name
        self.address = self.lst.address
        self.pool = ThreadPoolExecutor(4)

    def raw(self) -> socket.socket:
        if self.kind == "tcp":
            s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        else:
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(10)
            s.connect(self.lst.path)
        return s

    def raw_after_handshake(self) -> socket.socket:
        """A raw socket past the handshake: what it sends next is application data."""
        s = self.raw()
        (n,) = HEADER.unpack(_recv_exactly(s, 8))
        greeting = json.loads(_recv_exactly(s, n))
        hello = json.dumps({"proto": "interproc/1", "kind": greeting["kind"]}).encode()
        s.sendall(HEADER.pack(len(hello)) + hello)
        return s

    def accept_async(self):
        return self.pool.submit(self.lst.accept, timeout=10)

    def good_client(self):
        return accept_and_connect(self.lst, lambda: interproc.connect(self.address, timeout=10))

    def close(self) -> None:
        self.pool.shutdown()
        self.lst.close()


def _recv_exactly(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        assert chunk, "server closed early"
        data += chunk
    return data


@pytest.fixture(params=["tcp", "pipe"])
def server(request, name):
    srv = Server(request.param, name)
    yield srv
    srv.close()


def _still_serving(server, idle_client_pair):
    """The idle good client keeps working and a new good client is served."""
    c, p = idle_client_pair
    c.send(b"still here")
    assert p.recv(timeout=10) == b"still here"
    c2, p2 = server.good_client()
    with c2, p2:
        c2.send_obj({"fresh": True})
        assert p2.recv_obj(timeout=10) == {"fresh": True}


@pytest.mark.parametrize("junk", ["random", "huge-prefix", "not-json"])
def test_garbage_handshake_raises_in_accept_and_server_goes_on(server, junk):
    pair = server.good_client()
    with pair[0], pair[1]:
        fut = server.accept_async()
        bad = server.raw()
        _recv_exactly(bad, 8)
        if junk == "random":
            bad.sendall(random.Random(1).randbytes(4096))
        elif junk == "huge-prefix":
            bad.sendall(HEADER.pack(2**63) + b"\0" * 64)
        else:
            bad.sendall(HEADER.pack(9) + b"GET / HTT")
        with pytest.raises(interproc.ProtocolError):
            fut.result(timeout=15)
        bad.close()
        _still_serving(server, pair)


@pytest.mark.parametrize("junk", ["random", "huge-prefix", "truncated"])
def test_bad_frames_raise_in_recv_and_server_goes_on(server, junk):
    pair = server.good_client()
    with pair[0], pair[1]:
        fut = server.accept_async()
        bad = server.raw_after_handshake()
        peer = fut.result(timeout=15)
        if junk == "random":
            bad.sendall(random.Random(2).randbytes(100000))
        elif junk == "huge-prefix":
            bad.sendall(HEADER.pack(2**63))
        else:
            bad.sendall(HEADER.pack(100) + b"only ten b")
            bad.close()
        with pytest.raises(interproc.ProtocolError) as info:
            peer.recv(timeout=10)
        if junk == "truncated":
            assert isinstance(info.value, TruncatedMessage) and isinstance(info.value, interproc.ChannelClosed)
        assert peer.closed  # a desynchronised stream is closed, not guessed at
        bad.close()
        _still_serving(server, pair)


def _readable(fd: int, timeout: float = 10) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(timeout * 1000))


SENDER = """
import sys, interproc
ch = interproc.connect(sys.argv[1], timeout=10)
ch.send(b"complete message")
print("SENDING", flush=True)
ch.send(b"x" * (64 * 1024 * 1024))   # blocks: nobody reads it while we are killed
print("SENT", flush=True)
"""


def test_peer_sigkilled_mid_message(server, spawn):
    fut = server.accept_async()
    proc = spawn(SENDER, server.address)
    with fut.result(timeout=15) as peer:
        assert peer.recv(timeout=10) == b"complete message"
        wait_for_line(proc, "SENDING")
        assert _readable(peer.fileno())  # part of the big message has arrived
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        with pytest.raises(interproc.ChannelClosed) as info:
            peer.recv(timeout=10)  # the rest never comes: no partial message, no hang
        assert isinstance(info.value, TruncatedMessage)


def test_anonymous_pipe_writer_sigkilled_mid_message():
    code = (
        "from interproc.pipes import pipe_from_env\n"
        "w = pipe_from_env(); w.send(b'whole'); print('SENDING', flush=True)\n"
        "w.send(b'y' * (32 * 1024 * 1024))\n"
    )
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc, r = popen_with_pipe([sys.executable, "-c", code], child="write", env=env,
                              stdout=subprocess.PIPE, text=True)
    try:
        with r:
            assert r.recv(timeout=10) == b"whole"
            assert proc.stdout.readline().strip() == "SENDING"
            assert _readable(r.fileno())
            proc.kill()
            proc.wait(10)
            with pytest.raises(TruncatedMessage):
                r.recv(timeout=10)
            assert list(r) == []
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        proc.stdout.close()


# -- many clients -------------------------------------------------------------------

N_PROCS = 64
N_MESSAGES = 1000

CLIENT = """
import sys, interproc
cid = int(sys.argv[1])
chans = [interproc.connect(a, timeout=60) for a in sys.argv[2:]]
for seq in range(%(n)d):
    for ch in chans:
        size = (seq * 37 + cid) %% 2000
        ch.send(cid.to_bytes(4, "big") + seq.to_bytes(4, "big") + bytes([(cid + seq) & 255]) * size)
for ch in chans:
    assert ch.recv_obj(timeout=60) == {"ok": %(n)d}
    ch.close()
""" % {"n": N_MESSAGES}


def _verify(ch, results, key):
    """Server side of one client: every message intact and in order."""
    try:
        with ch:
            cid = None
            for seq in range(N_MESSAGES):
                msg = ch.recv(timeout=60)
                this = int.from_bytes(msg[:4], "big")
                cid = this if cid is None else cid
                assert this == cid, "messages of two clients mixed"
                assert int.from_bytes(msg[4:8], "big") == seq, f"client {cid}: message {seq} out of order"
                size = (seq * 37 + cid) % 2000
                assert msg[8:] == bytes([(cid + seq) & 255]) * size, f"client {cid}: message {seq} corrupted"
            ch.send_obj({"ok": N_MESSAGES})
            results[key].append(cid)
    except BaseException as exc:
        results["errors"].append(f"{key}: {exc!r}")


@pytest.mark.timeout(180)
def test_64_client_processes_on_one_pipe_server_and_one_tcp_server(name, spawn):
    """64 client processes, each connected to both servers at once, 1000 messages to each."""
    pipe_srv = NamedPipe.serve(name, max_instances=N_PROCS)
    tcp_srv = sockets.listen_tcp("127.0.0.1", 0)
    results: dict = {"pipe": [], "tcp": [], "errors": []}
    threads = []

    def serve(lst, key):
        for _ in range(N_PROCS):
            ch = lst.accept(timeout=120)
            t = threading.Thread(target=_verify, args=(ch, results, key), daemon=True)
            t.start()
            threads.append(t)

    acceptors = [threading.Thread(target=serve, args=(pipe_srv, "pipe"), daemon=True),
                 threading.Thread(target=serve, args=(tcp_srv, "tcp"), daemon=True)]
    try:
        for t in acceptors:
            t.start()
        procs = [spawn(CLIENT, str(i), pipe_srv.address, tcp_srv.address) for i in range(N_PROCS)]
        for proc in procs:
            out, err = proc.communicate(timeout=150)
            assert proc.returncode == 0, err
        for t in acceptors + threads:
            t.join(30)
        assert results["errors"] == []
        assert sorted(results["pipe"]) == list(range(N_PROCS))
        assert sorted(results["tcp"]) == list(range(N_PROCS))
    finally:
        pipe_srv.close()
        tcp_srv.close()
