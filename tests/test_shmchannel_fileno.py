"""shm:// ``fileno()``: a descriptor to select/poll on, across real processes.

The sender rings the receiver's doorbell only while the receiver is armed;
these tests check that no wake-up is lost, that the descriptor is quiet when
nothing is queued, and that the peer's close and death make it readable."""

from __future__ import annotations

import os
import select
import signal
import subprocess

import pytest

from conftest import wait_for_line
import interproc
from interproc import ChannelClosed, HandleClosed, Timeout

SENDER = """
import sys, interproc
ch = interproc.connect(sys.argv[1], timeout=10)
print("READY", flush=True)
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == "send":
        for i in range(int(cmd[1])):
            ch.send(b"m%d" % i)
    elif cmd[0] == "close":
        ch.close()
        print("CLOSED", flush=True)
    elif cmd[0] == "sleep":
        import time; time.sleep(60)
"""


def _readable(fd: int, timeout: float) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


def _cmd(child: subprocess.Popen, line: str) -> None:
    child.stdin.write(line + "\n")
    child.stdin.flush()


@pytest.mark.parametrize("policy", ["hybrid", "spin", "sleep"])
def test_select_wakes_on_message_from_other_process(spawn, name, policy):
    with interproc.listen(f"shm://{name}") as lst:
        child = spawn(SENDER, f"shm://{name}?policy={policy}", stdin=subprocess.PIPE)
        with lst.accept(timeout=10) as ch:
            wait_for_line(child, "READY")
            for n in (1, 3):
                fd = ch.fileno()
                assert not _readable(fd, 0.05), "readable with nothing queued"
                _cmd(child, f"send {n}")
                assert _readable(ch.fileno(), 10)
                got = []
                while True:
                    try:
                        got.append(ch.recv(timeout=0))
                    except Timeout:
                        if len(got) == n:
                            break
                        assert _readable(ch.fileno(), 10)
                assert got == [b"m%d" % i for i in range(n)]
            _cmd(child, "close")
            wait_for_line(child, "CLOSED")
            assert _readable(ch.fileno(), 10)
            with pytest.raises(ChannelClosed):
                ch.recv(timeout=0)
            child.stdin.close()
            child.wait(timeout=10)


def test_no_lost_wakeups_under_a_stream(spawn, name):
    """Many messages while we re-arm between them: every one arrives through select."""
    with interproc.listen(f"shm://{name}") as lst:
        child = spawn(SENDER, f"shm://{name}", stdin=subprocess.PIPE)
        with lst.accept(timeout=10) as ch:
            wait_for_line(child, "READY")
            _cmd(child, "send 3000")
            got = 0
            while got < 3000:
                assert _readable(ch.fileno(), 10), f"stuck after {got} messages"
                try:
                    assert ch.recv(timeout=0) == b"m%d" % got
                    got += 1
                except Timeout:
                    pass  # spurious readiness is allowed
            assert not _readable(ch.fileno(), 0.05)
            child.stdin.close()
            child.wait(timeout=10)


def test_connector_side_selects_while_server_sends(spawn, name):
    code = """
import select, sys, interproc
ch = interproc.connect(sys.argv[1], timeout=10)
fd = ch.fileno()
print("QUIET" if not select.select([fd], [], [], 0.05)[0] else "NOISY", flush=True)
r = select.select([ch], [], [], 10)[0]  # select calls fileno() itself
print("WOKE", bool(r), ch.recv(timeout=0).decode(), flush=True)
"""
    with interproc.listen(f"shm://{name}") as lst:
        child = spawn(code, f"shm://{name}")
        with lst.accept(timeout=10) as ch:
            assert wait_for_line(child, "QUIET").strip() == "QUIET"
            ch.send(b"ping")
            assert wait_for_line(child, "WOKE").split() == ["WOKE", "True", "ping"]
            child.wait(timeout=10)


def test_peer_death_makes_it_readable(spawn, name):
    with interproc.listen(f"shm://{name}") as lst:
        child = spawn(SENDER, f"shm://{name}", stdin=subprocess.PIPE)
        with lst.accept(timeout=10) as ch:
            wait_for_line(child, "READY")
            _cmd(child, "send 1")
            assert _readable(ch.fileno(), 10)
            assert ch.recv(timeout=0) == b"m0"
            fd = ch.fileno()
            assert not _readable(fd, 0.05)
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
            assert _readable(fd, 10)  # the peer's pidfd is in the set
            with pytest.raises(ChannelClosed, match="died"):
                ch.recv(timeout=0)


def test_writable_arm_wakes_blocked_sender(spawn, name):
    """arm_send: a full ring becomes 'readable' once the peer frees space."""
    code = """
import sys, interproc
ch = interproc.connect(sys.argv[1], timeout=10)
print("READY", flush=True)
sys.stdin.readline()
for _ in range(4):
    ch.recv(timeout=10)
print("DRAINED", flush=True)
sys.stdin.readline()
"""
    with interproc.listen(f"shm://{name}?capacity=4KiB") as lst:
        child = spawn(code, f"shm://{name}", stdin=subprocess.PIPE)
        with lst.accept(timeout=10) as ch:
            wait_for_line(child, "READY")
            core = ch._core
            while core.wait_send(1000, timeout=0):
                ch.send(bytes(1000), timeout=0)
            fd = ch.fileno()
            assert core.arm_send(1000) is False
            assert not _readable(fd, 0.05)
            _cmd(child, "go")
            wait_for_line(child, "DRAINED")
            assert _readable(fd, 10)
            assert core.wait_send(1000, timeout=0)
            _cmd(child, "bye")
            child.wait(timeout=10)


def test_fileno_after_close(name):
    with interproc.listen(f"shm://{name}") as lst:
        ch = interproc.connect(f"shm://{name}", timeout=5)
        with lst.accept(timeout=5) as srv:
            fd = srv.fileno()
            assert isinstance(fd, int) and fd >= 0
            ch.close()
            assert _readable(fd, 5)  # the peer's close rings the bell
        with pytest.raises(HandleClosed):
            srv.fileno()


def test_listener_fileno_wakes_on_a_connect_from_another_process(spawn, name):
    code = """
import sys, interproc
ch = interproc.connect(sys.argv[1], timeout=10)
ch.send(b"hi")
print("SENT", flush=True)
sys.stdin.readline()
"""
    with interproc.listen(f"shm://{name}") as lst:
        assert not _readable(lst.fileno(), 0.05)
        child = spawn(code, f"shm://{name}", stdin=subprocess.PIPE)
        assert _readable(lst.fileno(), 10)
        with lst.accept(timeout=0) as ch:
            assert ch.recv(timeout=10) == b"hi"
        assert not _readable(lst.fileno(), 0.05)  # drained, re-armed, nothing queued
        _cmd(child, "bye")
        child.wait(timeout=10)
    with pytest.raises(HandleClosed):
        lst.fileno()
