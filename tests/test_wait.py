"""interproc.wait over a mix of shm://, unix:// and tcp:// channels (and
listeners), with the peers in real processes."""

from __future__ import annotations

import subprocess
import time

import pytest

import interproc
from conftest import wait_for_line

# A peer process: connects, then sends what stdin tells it to.
PEER = """
import sys, interproc
ch = interproc.connect(sys.argv[1], timeout=10)
print("READY", flush=True)
for line in sys.stdin:
    cmd, *args = line.split()
    if cmd == "send":
        for word in args:
            ch.send(word.encode())
    elif cmd == "close":
        ch.close()
"""


def _tell(proc: subprocess.Popen, line: str) -> None:
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


def _wait_until(objs, want, timeout=10.0):
    """wait() until every object of ``want`` was reported; returns all reports."""
    seen: list = []
    end = time.monotonic() + timeout
    while not all(any(w is s for s in seen) for w in want):
        left = end - time.monotonic()
        assert left > 0, f"wait() never reported {want}, only {seen}"
        got = interproc.wait(objs, timeout=left)
        seen.extend(got)
        for ch in got:
            assert ch in want, f"{ch} reported ready with nothing sent"
    return seen


def test_wait_on_shm_unix_and_tcp_channels_across_processes(spawn, name, tmp_path):
    addrs = [f"shm://{name}", f"unix://{tmp_path}/{name}.sock", "tcp://127.0.0.1:0"]
    listeners = [interproc.listen(a) for a in addrs]
    try:
        peers = [spawn(PEER, lst.address, stdin=subprocess.PIPE) for lst in listeners]
        chans = [lst.accept(timeout=10) for lst in listeners]
        for p in peers:
            assert wait_for_line(p, "READY")
        shm, unix, tcp = chans
        assert interproc.wait(chans, timeout=0.2) == []  # nothing sent: nobody is ready

        _tell(peers[2], "send t1")
        assert _wait_until(chans, [tcp]) and tcp.recv(timeout=0) == b"t1"

        _tell(peers[0], "send s1")
        _tell(peers[1], "send u1")
        _wait_until(chans, [shm, unix])
        assert shm.recv(timeout=0) == b"s1" and unix.recv(timeout=0) == b"u1"
        assert interproc.wait(chans, timeout=0.1) == []

        # Two messages in one go: after the first recv the second is already
        # buffered by the channel (its descriptor may be quiet) and counts as ready.
        _tell(peers[1], "send u2 u3")
        _wait_until(chans, [unix])
        assert unix.recv(timeout=5) == b"u2"
        deadline = time.monotonic() + 5
        while unix not in interproc.wait(chans, timeout=0):
            assert time.monotonic() < deadline
        assert unix.recv(timeout=0) == b"u3"

        # A peer that closes makes its channel ready: recv raises at once.
        _tell(peers[0], "close")
        _wait_until(chans, [shm])
        with pytest.raises(interproc.ChannelClosed):
            shm.recv(timeout=5)
        for p in peers:
            p.stdin.close()
            p.wait(10)
        for ch in chans:
            ch.close()
        with pytest.raises(interproc.HandleClosed):
            interproc.wait(chans, timeout=0)
    finally:
        for lst in listeners:
            lst.close()


def test_wait_on_listeners_and_channels_together(spawn, name, tmp_path):
    with interproc.listen(f"unix://{tmp_path}/{name}.sock") as lst, \
            interproc.listen("tcp://127.0.0.1:0") as tlst:
        assert interproc.wait([lst, tlst], timeout=0.1) == []
        peer = spawn(PEER, tlst.address, stdin=subprocess.PIPE)
        assert interproc.wait([lst, tlst], timeout=10) == [tlst]
        ch = tlst.accept(timeout=10)
        wait_for_line(peer, "READY")
        _tell(peer, "send hello")
        assert interproc.wait([lst, tlst, ch], timeout=10) == [ch]
        assert ch.recv(timeout=0) == b"hello"
        peer.stdin.close()
        peer.wait(10)
        ch.close()


def test_wait_on_an_shm_listener(spawn, name, tmp_path):
    with interproc.listen(f"shm://{name}") as shm_lst, interproc.listen(f"unix://{tmp_path}/{name}.sock") as lst:
        assert interproc.wait([shm_lst, lst], timeout=0.1) == []
        peer = spawn(PEER, shm_lst.address, stdin=subprocess.PIPE)
        assert interproc.wait([shm_lst, lst], timeout=10) == [shm_lst]
        with shm_lst.accept(timeout=0) as ch:
            wait_for_line(peer, "READY")
            _tell(peer, "send via-shm")
            assert interproc.wait([shm_lst, lst, ch], timeout=10) == [ch]
            assert ch.recv(timeout=0) == b"via-shm"
            peer.stdin.close()
            peer.wait(10)


def test_wait_refuses_what_it_cannot_wait_on(name):
    from interproc.mailslot import Mailslot

    with Mailslot.create(name) as slot:
        with pytest.raises(TypeError, match="fileno"):
            interproc.wait([slot], timeout=0)
    with pytest.raises(ValueError, match="timeout"):
        interproc.wait([], timeout=-1)
