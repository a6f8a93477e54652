"""Publisher / Subscriber across real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from conftest import SRC, wait_for_line
from interproc import AlreadyExists, ChannelClosed, MessageTooLarge, NotFound, ProtocolError, Timeout
from interproc.shm import Publisher, Subscriber

SUBSCRIBE_ALL = """
import sys, hashlib
from interproc.shm import Subscriber
from interproc import ChannelClosed
sub = Subscriber.open(sys.argv[1], timeout=10)
print("READY", flush=True)
seqs, h = [], hashlib.sha256()
while True:
    try:
        with sub.recv(timeout=20) as s:
            seqs.append(int(bytes(s[:8]).decode()))
            h.update(s.buf)
    except ChannelClosed:
        break
print("DONE", len(seqs), seqs == list(range(len(seqs))), h.hexdigest(), flush=True)
sub.close()
"""


def _sample(i: int) -> bytes:
    return f"{i:08d}".encode() + bytes([i % 251]) * (i % 200)


def test_every_subscriber_gets_every_sample_in_order(spawn, name):
    import hashlib

    n = 400
    with Publisher.create(name, 256, 8) as pub:
        subs = [spawn(SUBSCRIBE_ALL, name) for _ in range(3)]
        for p in subs:
            wait_for_line(p, "READY")
        assert pub.subscribers == 3
        h = hashlib.sha256()
        for i in range(n):
            data = _sample(i)
            h.update(data)
            pub.send(data, timeout=20)
    for p in subs:
        line = wait_for_line(p, "DONE", timeout=30).split()
        assert line[1:] == ["DONE", str(n), "True", h.hexdigest()][1:]
        assert p.wait(timeout=10) == 0


def test_drop_oldest_never_blocks_and_counts_drops(spawn, name):
    code = """
import sys
from interproc.shm import Subscriber
from interproc import Timeout
sub = Subscriber.open(sys.argv[1], policy="drop_oldest", timeout=10)
print("READY", flush=True)
sys.stdin.readline()
got = []
while True:
    try:
        got.append(int(sub.recv_bytes(timeout=0.5)))
    except Timeout:
        break
print("DONE", got == sorted(got), len(got), sub.dropped, got[0], got[-1], flush=True)
sub.close()
"""
    with Publisher.create(name, 16, 4) as pub:
        child = spawn(code, name, stdin=subprocess.PIPE)
        wait_for_line(child, "READY")
        assert pub.subscribers == 1
        for i in range(100):
            pub.send(b"%d" % i, timeout=5)  # never waits for a drop_oldest subscriber
        child.stdin.write("go\n")
        child.stdin.flush()
        _, ordered, received, dropped, first, last = wait_for_line(child, "DONE").split()
        assert ordered == "True"
        assert int(received) + int(dropped) == 100
        assert int(dropped) >= 100 - 3  # at most slots-1 samples survive a lap
        assert int(last) == 99 and int(first) == int(dropped)
        assert child.wait(timeout=10) == 0


def test_late_joiner_gets_history(spawn, name):
    code = """
import sys
from interproc.shm import Subscriber
from interproc import Timeout
with Subscriber.open(sys.argv[1]) as sub:
    got = [sub.recv_bytes(timeout=5).decode() for _ in range(4)]
    try:
        sub.recv(timeout=0.2)
        got.append("unexpected")
    except Timeout:
        pass
print(" ".join(got))
"""
    with Publisher.create(name, 32, 8, history=4) as pub:
        for i in range(10):
            pub.send(b"s%d" % i)
        assert spawn.run(code, name).split() == ["s6", "s7", "s8", "s9"]
        with Subscriber.open(name) as none_yet:  # history=0 publisher? no: same one, history 4
            assert none_yet.recv_bytes(timeout=1) == b"s6"


def test_no_history_starts_at_next_sample(name):
    with Publisher.create(name, 32, 4) as pub:
        pub.send(b"before")
        with Subscriber.open(name) as sub:
            with pytest.raises(Timeout):
                sub.recv(timeout=0.05)
            pub.send(b"after")
            assert sub.recv_bytes(timeout=1) == b"after"


def test_loan_is_zero_copy_with_numpy(spawn, name):
    np = pytest.importorskip("numpy")
    code = """
import sys
import numpy as np
from interproc.shm import Subscriber
with Subscriber.open(sys.argv[1], timeout=10) as sub:
    print("READY", flush=True)
    with sub.recv(timeout=10) as s:
        arr = np.frombuffer(s.buf, dtype=np.float64)
        print("GOT", arr.sum(), arr.flags.writeable, len(s), flush=True)
        del arr
"""
    with Publisher.create(name, 800, 4) as pub:
        child = spawn(code, name)
        wait_for_line(child, "READY")
        seg = np.frombuffer(pub._seg.buf, dtype=np.uint8)
        lo, hi = seg.ctypes.data, seg.ctypes.data + seg.nbytes
        with pub.loan(800) as buf:
            arr = np.frombuffer(buf, dtype=np.float64)
            assert arr.flags.writeable
            assert lo <= arr.ctypes.data < hi  # the array *is* the slot: zero copy
            arr[:] = np.arange(100)
            del arr
        line = wait_for_line(child, "GOT").split()
        assert line == ["GOT", str(float(sum(range(100)))), "False", "800"]
        assert child.wait(timeout=10) == 0


def test_samples_are_read_only_and_die_on_release(name):
    with Publisher.create(name, 32, 4) as pub, Subscriber.open(name) as sub:
        pub.send(b"hello")
        s = sub.recv(timeout=1)
        assert s.buf.readonly and bytes(s) == b"hello" and s == b"hello" and len(s) == 5
        with pytest.raises(TypeError):
            s.buf[0] = 0
        s.release()
        assert s.released
        with pytest.raises(ValueError):
            s.buf.tobytes()
        s.release()  # twice is harmless


def test_block_subscriber_holds_back_publisher_until_released(name):
    with Publisher.create(name, 8, 3) as pub, Subscriber.open(name) as sub:
        for m in (b"a", b"b", b"c"):
            pub.send(m)
        held = sub.recv(timeout=1)
        with pytest.raises(Timeout):
            pub.send(b"d", timeout=0.1)  # would overwrite sample 0, still held
        held.release()
        pub.send(b"d", timeout=1)
        assert [sub.recv_bytes(timeout=1) for _ in range(3)] == [b"b", b"c", b"d"]


def test_discarded_loan_publishes_nothing(name):
    with Publisher.create(name, 8, 3) as pub, Subscriber.open(name) as sub:
        with pytest.raises(RuntimeError):
            with pub.loan(4) as buf:
                buf[:] = b"lost"
                raise RuntimeError("boom")
        loan = pub.loan(8)
        loan.buf[:3] = b"abc"
        loan.publish(3)
        with pytest.raises(ValueError):
            loan.publish()
        assert sub.recv_bytes(timeout=1) == b"abc"
        assert pub.published == 1


def test_killed_subscriber_does_not_block_publisher(spawn, name):
    code = """
import sys, time
from interproc.shm import Subscriber
sub = Subscriber.open(sys.argv[1], timeout=10)
print("READY", flush=True)
time.sleep(60)
"""
    with Publisher.create(name, 16, 4) as pub:
        child = spawn(code, name)
        wait_for_line(child, "READY")
        for i in range(4):
            pub.send(b"%d" % i, timeout=1)
        with pytest.raises(Timeout):
            pub.send(b"full", timeout=0.2)  # the live subscriber holds everyone back
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        for i in range(20):
            pub.send(b"%d" % i, timeout=5)
        assert pub.subscribers == 0


def test_publisher_close_drains_then_channel_closed(spawn, name):
    code = """
import sys
from interproc.shm import Publisher
pub = Publisher.create(sys.argv[1], 16, 8)
print("READY", flush=True)
sys.stdin.readline()
for i in range(3):
    pub.send(b"m%d" % i)
pub.close()
print("CLOSED", flush=True)
sys.stdin.readline()
"""
    child = spawn(code, name, stdin=subprocess.PIPE)
    wait_for_line(child, "READY")
    with Subscriber.open(name) as sub:
        child.stdin.write("go\n")
        child.stdin.flush()
        wait_for_line(child, "CLOSED")
        assert [sub.recv_bytes(timeout=5) for _ in range(3)] == [b"m0", b"m1", b"m2"]
        with pytest.raises(ChannelClosed):
            sub.recv(timeout=5)
    child.stdin.write("bye\n")
    child.stdin.flush()
    assert child.wait(timeout=10) == 0


def test_killed_publisher_wakes_waiting_subscriber(spawn, name):
    code = """
import sys, time
from interproc.shm import Publisher
pub = Publisher.create(sys.argv[1], 16, 8)
print("READY", flush=True)
time.sleep(60)
"""
    child = spawn(code, name)
    wait_for_line(child, "READY")
    with Subscriber.open(name) as sub:
        import threading

        threading.Timer(0.3, child.kill).start()
        with pytest.raises(ChannelClosed):
            sub.recv(timeout=20)  # ChannelClosed, not Timeout: the death is noticed
    child.wait(timeout=10)


CORRUPT = """
import mmap, os, struct, sys
path, offset, fmt, value = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
fd = os.open(path, os.O_RDWR)
m = mmap.mmap(fd, os.fstat(fd).st_size)
struct.pack_into(fmt, m, offset, value)
m.close(); os.close(fd)
"""


def test_corrupted_length_is_a_protocol_error(spawn, name):
    from interproc._pubsub import SLOT_HEADER
    from interproc._shm import HEADER_SIZE

    with Publisher.create(name, 64, 4) as pub, Subscriber.open(name) as sub, \
            Subscriber.open(name, policy="drop_oldest") as dsub:
        pub.send(b"fine")
        slot = HEADER_SIZE + pub._geo.slot(0)
        # A third process writes a huge length into the slot header.
        spawn.run(CORRUPT, pub._seg._path, str(slot + 8), "<Q", str(1 << 40))
        with pytest.raises(ProtocolError):
            sub.recv(timeout=1)
        with pytest.raises(ProtocolError):
            dsub.recv(timeout=1)
        # And a sequence number that cannot be there.
        spawn.run(CORRUPT, pub._seg._path, str(slot), "<Q", "12345")
        with pytest.raises(ProtocolError):
            sub.recv(timeout=1)
        assert SLOT_HEADER >= 16


def test_corrupted_header_is_a_protocol_error(spawn, name):
    from interproc._shm import HEADER_SIZE

    with Publisher.create(name, 64, 4) as pub:
        spawn.run(CORRUPT, pub._seg._path, str(HEADER_SIZE + 24), "<I", str(1 << 30))  # slots
        with pytest.raises(ProtocolError):
            Subscriber.open(name)
        spawn.run(CORRUPT, pub._seg._path, str(HEADER_SIZE), "<Q", str(0x4141414141414141))  # magic
        with pytest.raises(ProtocolError):
            Subscriber.open(name)


def test_corrupted_subscriber_table_is_a_protocol_error(spawn, name):
    from interproc._pubsub import OFF_TABLE
    from interproc._shm import HEADER_SIZE

    with Publisher.create(name, 16, 2) as pub, Subscriber.open(name):
        spawn.run(CORRUPT, pub._seg._path, str(HEADER_SIZE + OFF_TABLE), "<Q", "255")  # state 255
        with pytest.raises(ProtocolError):
            for _ in range(3):
                pub.send(b"x", timeout=1)


def test_bad_arguments(name):
    with pytest.raises(ValueError, match="slot_size"):
        Publisher.create(name, 0, 4)
    with pytest.raises(ValueError, match="slots"):
        Publisher.create(name, 8, 1)
    with pytest.raises(ValueError, match="history"):
        Publisher.create(name, 8, 4, history=4)
    with pytest.raises(TypeError, match="slot_size"):
        Publisher.create(name, "8", 4)
    with pytest.raises(ValueError, match="character"):
        Publisher.create("bad/name", 8, 4)
    with pytest.raises(TypeError):
        Publisher()
    with pytest.raises(NotFound):
        Subscriber.open(name)
    with pytest.raises(Timeout):  # the one rule: waited, then Timeout (issue 10)
        Subscriber.open(name, timeout=0.05)
    with Publisher.create(name, 8, 4) as pub:
        with pytest.raises(AlreadyExists):
            Publisher.create(name, 8, 4)
        with pytest.raises(ValueError, match="policy"):
            Subscriber.open(name, policy="newest")
        with pytest.raises(MessageTooLarge):
            pub.send(b"123456789")
        with pytest.raises(ValueError, match="timeout"):
            pub.send(b"1", timeout=-1)
        with Subscriber.open(name) as sub:
            with pytest.raises(ValueError, match="timeout"):
                sub.recv(timeout=-1)
    assert pub.closed
    with pytest.raises(ValueError, match="closed"):
        pub.send(b"x")


def test_max_subscribers(name):
    with Publisher.create(name, 8, 4, max_subscribers=2) as pub:
        a, b = Subscriber.open(name), Subscriber.open(name)
        with pytest.raises(Exception, match="max_subscribers"):
            Subscriber.open(name)
        a.close()
        with Subscriber.open(name):
            assert pub.subscribers == 2
        b.close()


def test_ls_shows_publisher_and_subscriber_count(name):
    with Publisher.create(name, 8, 4) as pub, Subscriber.open(name), Subscriber.open(name):
        pub.send(b"x")
        env = dict(os.environ, PYTHONPATH=SRC)
        out = subprocess.run([sys.executable, "-m", "interproc", "ls", "--json", "--kind", "pub"],
                             capture_output=True, text=True, env=env, timeout=30, check=True).stdout
        mine = [o for o in json.loads(out) if o["name"] == name]
        assert len(mine) == 1
        assert mine[0]["details"]["subscribers"] == 2
        assert mine[0]["details"]["published"] == 1
        assert mine[0]["details"]["publisher"] == "alive"


def test_ctrl_c_interrupts_waiting_subscriber_and_publisher(spawn, name, name_factory):
    import time

    sub_code = """
import sys
from interproc.shm import Subscriber
sub = Subscriber.open(sys.argv[1], timeout=10)
print("READY", flush=True)
try:
    sub.recv()  # no timeout: only Ctrl-C ends this wait
except KeyboardInterrupt:
    print("INTERRUPTED", flush=True)
sub.close()
"""
    pub_code = """
import sys
from interproc.shm import Publisher
pub = Publisher.create(sys.argv[1], 8, 2)
print("READY", flush=True)
sys.stdin.readline()
try:
    while True:
        pub.send(b"x")  # blocks once the subscriber holds both slots
except KeyboardInterrupt:
    print("INTERRUPTED", pub.published, flush=True)
pub.close()
"""
    with Publisher.create(name, 8, 2):
        child = spawn(sub_code, name)
        wait_for_line(child, "READY")
        time.sleep(0.3)  # asleep on the futex by now
        child.send_signal(signal.SIGINT)
        wait_for_line(child, "INTERRUPTED")
        assert child.wait(timeout=10) == 0

    other = name_factory()
    child = spawn(pub_code, other, stdin=subprocess.PIPE)
    wait_for_line(child, "READY")
    with Subscriber.open(other):
        child.stdin.write("go\n")
        child.stdin.flush()
        time.sleep(0.3)
        child.send_signal(signal.SIGINT)
        line = wait_for_line(child, "INTERRUPTED")
        assert line.split()[1] == "2"  # both slots filled, then it waited
        assert child.wait(timeout=10) == 0


def test_a_dropped_sample_gives_its_slot_back(name):
    """Sample is a C type now: garbage-collecting one releases it, so a
    subscriber that forgets release() does not stop the publisher forever."""
    with Publisher.create(name, 8, 3) as pub, Subscriber.open(name) as sub:
        for i in range(20):
            pub.send(b"%d" % i, timeout=5)  # would time out if the slots stayed held
            assert bytes(sub.recv(timeout=5)) == b"%d" % i
        assert sub.received == 20
