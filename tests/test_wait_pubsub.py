"""interproc.wait over pub/sub Subscribers mixed with shm:// and unix://
channels, the publisher and the channel peers in real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from conftest import wait_for_line
from test_wait import PEER, _tell, _wait_until  # the channel peer and wait helpers

import interproc
from interproc._pubsub._layout import OFF_SUB_WAITERS, _load
from interproc.shm import Subscriber

# A publisher process: publishes what stdin tells it to.
PUBLISHER = """
import sys
from interproc.shm import Publisher
pub = Publisher.create(sys.argv[1], slot_size=64, slots=8)
print("READY", flush=True)
for line in sys.stdin:
    cmd, *args = line.split()
    if cmd == "send":
        for word in args:
            pub.send(word.encode())
    elif cmd == "waiters":
        from interproc._pubsub._layout import OFF_SUB_WAITERS, _load
        print("WAITERS", _load(pub._buf, OFF_SUB_WAITERS), flush=True)
    elif cmd == "close":
        pub.close()
"""

def _publisher(spawn, name):
    proc = spawn(PUBLISHER, name, stdin=subprocess.PIPE)
    wait_for_line(proc, "READY")
    return proc


def test_wait_on_a_subscriber_an_shm_and_a_unix_channel(spawn, name, name_factory, tmp_path):
    pub = _publisher(spawn, name)
    addrs = [f"shm://{name_factory()}", f"unix://{tmp_path}/{name}.sock"]
    listeners = [interproc.listen(a) for a in addrs]
    try:
        peers = [spawn(PEER, lst.address, stdin=subprocess.PIPE) for lst in listeners]
        shm, unix = [lst.accept(timeout=10) for lst in listeners]
        for p in peers:
            wait_for_line(p, "READY")
        with Subscriber.open(name, timeout=10) as sub:
            objs = [sub, shm, unix]
            assert interproc.wait(objs, timeout=0.2) == []   # nothing sent: nobody is ready

            _tell(pub, "send p1")
            assert _wait_until(objs, [sub]) == [sub]
            assert sub.recv_bytes(timeout=0) == b"p1"
            assert interproc.wait(objs, timeout=0.1) == []

            _tell(pub, "send p2")
            _tell(peers[0], "send s1")
            _tell(peers[1], "send u1")
            _wait_until(objs, [sub, shm, unix])
            assert sub.recv_bytes(timeout=0) == b"p2"
            assert shm.recv(timeout=0) == b"s1" and unix.recv(timeout=0) == b"u1"

            # Two samples: after the first recv the second is still ready.
            _tell(pub, "send p3 p4")
            _wait_until(objs, [sub])
            assert sub.recv_bytes(timeout=5) == b"p3"
            deadline = time.monotonic() + 5
            while sub not in interproc.wait(objs, timeout=0):
                assert time.monotonic() < deadline
            assert sub.recv_bytes(timeout=0) == b"p4"

            # The publisher closing makes the subscriber ready: recv raises at once.
            _tell(pub, "close")
            _wait_until(objs, [sub])
            with pytest.raises(interproc.ChannelClosed):
                sub.recv(timeout=5)
        with pytest.raises(interproc.HandleClosed):
            interproc.wait([sub, shm], timeout=0)
        for p in [pub, *peers]:
            p.stdin.close()
            p.wait(10)
        shm.close()
        unix.close()
    finally:
        for lst in listeners:
            lst.close()


def test_a_publisher_killed_wakes_a_waiting_subscriber(spawn, name, tmp_path):
    pub = _publisher(spawn, name)
    with interproc.listen(f"unix://{tmp_path}/{name}.sock") as lst, \
            Subscriber.open(name, timeout=10) as sub:
        assert interproc.wait([sub, lst], timeout=0.1) == []
        os.kill(pub.pid, signal.SIGKILL)   # no close: only its pidfd tells
        pub.wait(10)
        assert interproc.wait([sub, lst], timeout=10) == [sub]
        with pytest.raises(interproc.ChannelClosed):
            sub.recv(timeout=5)


def test_several_subscribers_and_policies_in_one_wait(spawn, name, name_factory):
    pubs = {n: _publisher(spawn, n) for n in (name, name_factory())}
    (n1, p1), (n2, p2) = pubs.items()
    with Subscriber.open(n1, timeout=10) as block, \
            Subscriber.open(n2, policy="drop_oldest", timeout=10) as drop:
        assert interproc.wait([block, drop], timeout=0.1) == []
        _tell(p2, "send d1")
        assert _wait_until([block, drop], [drop]) == [drop]
        assert drop.recv_bytes(timeout=0) == b"d1"
        _tell(p1, "send b1")
        assert _wait_until([block, drop], [block]) == [block]
        assert block.recv_bytes(timeout=0) == b"b1"
    for p in (p1, p2):
        _tell(p, "close")
        p.stdin.close()
        p.wait(10)


def test_a_subscriber_leaves_the_publishers_wake_path_when_its_wait_is_over(spawn, name):
    # While armed by fileno() a subscriber counts as a sleeper, so the publisher
    # rings it; the next recv (or close) takes it off again, so a publisher
    # whose subscribers stopped waiting is back on its fast path.
    pub = _publisher(spawn, name)
    with Subscriber.open(name, timeout=10) as sub:
        buf = sub._buf
        assert interproc.wait([sub], timeout=0.05) == []
        assert _load(buf, OFF_SUB_WAITERS) == 1
        _tell(pub, "send x")
        assert interproc.wait([sub], timeout=10) == [sub]
        assert sub.recv_bytes(timeout=0) == b"x"
        assert _load(buf, OFF_SUB_WAITERS) == 0
        sub.fileno()
        assert _load(buf, OFF_SUB_WAITERS) == 1
    _tell(pub, "waiters")  # closed while armed: it no longer counts
    assert wait_for_line(pub, "WAITERS").split() == ["WAITERS", "0"]
    _tell(pub, "close")
    pub.stdin.close()
    pub.wait(10)
    assert pub.returncode == 0
