"""shm:// channel across real processes: echo, sizes, buffers, timeouts, views,
ordering, peer death, close, several connections, corruption, ls and gc."""

from __future__ import annotations

import array
import os
import signal
import struct
import threading
import time

import pytest

from conftest import wait_for_line
import interproc
from interproc import ChannelClosed, MessageTooLarge, NotFound, ProtocolError, Timeout
from interproc._naming import segment_name
from interproc._shm import HEADER_SIZE

np = pytest.importorskip("numpy")

ECHO = """
import sys, interproc
ch = interproc.connect(sys.argv[1], timeout=10)
ch.send(b"hello from child")
print("READY", flush=True)
for msg in ch:
    ch.send(msg)
"""


def _seg_path(name: str) -> str:
    """The path of the one connection segment of listener ``name`` (ids are random)."""
    import glob

    found = glob.glob(os.path.join("/dev/shm", segment_name("chan", f"{name}.x")[:-1] + "*"))
    return found[0] if len(found) == 1 else os.path.join("/dev/shm", "no-single-connection-of-" + name)


@pytest.fixture
def echo(spawn, name):
    """A listener here and an echoing child process connected to it."""
    with interproc.listen(f"shm://{name}?capacity=4MiB") as lst:
        child = spawn(ECHO, f"shm://{name}")
        ch = lst.accept(timeout=10)
        try:
            assert ch.recv(timeout=10) == b"hello from child"
            yield ch
        finally:
            ch.close()
            child.wait(timeout=10)


@pytest.mark.parametrize("size", [0, 1, 7, 64, 64 * 1024, 1 << 20, (4 << 20) // 2 - 8])
def test_echo_sizes_across_processes(echo, size):
    data = os.urandom(size)
    echo.send(data)
    assert echo.recv(timeout=10) == data


def test_echo_any_buffer_type(echo):
    arr = np.arange(1000, dtype=np.float64)
    buffers = [b"bytes", bytearray(b"bytearray"), memoryview(b"xxmemoryviewxx")[2:-2],
               array.array("i", range(50)), arr, arr.reshape(10, 100),
               arr[::3], arr.reshape(10, 100).T, memoryview(bytes(range(200)))[::7]]
    for buf in buffers:
        echo.send(buf)
        assert echo.recv(timeout=10) == memoryview(buf).tobytes()  # strided: C order
    with pytest.raises(TypeError):
        echo.send("a str is not a buffer")


def test_recv_into_and_view(echo):
    echo.send(b"abcdef")
    buf = bytearray(3)
    with pytest.raises(MessageTooLarge):
        echo.recv_into(buf, timeout=10)
    big = bytearray(100)
    assert echo.recv_into(big, timeout=10) == 6  # the message stayed queued
    assert big[:6] == b"abcdef"
    echo.send(b"view me")
    with echo.recv_view(timeout=10) as view:
        assert view.readonly
        assert bytes(view) == b"view me"
        with pytest.raises(TypeError):
            view[0] = 1


def test_obj_codec(echo):
    echo.send_obj({"a": [1, 2, 3]})
    assert echo.recv_obj(timeout=10) == {"a": [1, 2, 3]}


def test_message_too_large(spawn, name):
    with interproc.listen(f"shm://{name}?capacity=64KiB") as lst:
        child = spawn(ECHO, f"shm://{name}")
        with lst.accept(timeout=10) as ch:
            assert ch.capacity == 64 * 1024
            assert ch.max_message == 32 * 1024 - 8
            assert ch.recv(timeout=10) == b"hello from child"
            with pytest.raises(MessageTooLarge, match="capacity"):
                ch.send(bytes(ch.max_message + 1))
            ch.send(bytes(ch.max_message))  # still usable, and the limit itself fits
            assert len(ch.recv(timeout=10)) == ch.max_message
        child.wait(timeout=10)


def test_connector_capacity_wins(spawn, name):
    code = """
import sys, interproc
ch = interproc.connect(sys.argv[1], timeout=10)
ch.send(bytes(3 << 20))
print(ch.capacity, flush=True)
ch.recv()
"""
    with interproc.listen(f"shm://{name}") as lst:
        child = spawn(code, f"shm://{name}?capacity=8MiB")
        with lst.accept(timeout=10) as ch:
            assert ch.capacity == 8 << 20
            assert len(ch.recv(timeout=10)) == 3 << 20
            assert wait_for_line(child, "8388608")
            ch.send(b"bye")
        child.wait(timeout=10)


def test_bad_options(name):
    with pytest.raises(ValueError, match="capacity"):
        interproc.listen(f"shm://{name}?capacity=lots")
    with pytest.raises(ValueError, match="capacity"):
        interproc.listen(f"shm://{name}?capacity=1KiB")
    with pytest.raises(ValueError, match="policy"):
        interproc.listen(f"shm://{name}?policy=nap")
    with pytest.raises(ValueError, match="unknown option"):
        interproc.listen(f"shm://{name}?colour=blue")


def test_connect_nobody_listening(name, spawn):
    t0 = time.monotonic()
    with pytest.raises(NotFound):
        interproc.connect(f"shm://{name}")
    with pytest.raises(interproc.Timeout):  # the one rule: waited, then Timeout (issue 10)
        interproc.connect(f"shm://{name}", timeout=0.2)
    assert time.monotonic() - t0 < 30  # sanity only: neither call hung
    # With a timeout, a listener that appears later is found.
    code = """
import sys, time, interproc
time.sleep(0.3)
with interproc.listen(sys.argv[1]) as lst:
    with lst.accept(timeout=10) as ch:
        ch.send(ch.recv())
"""
    child = spawn(code, f"shm://{name}")
    with interproc.connect(f"shm://{name}", timeout=10) as ch:
        ch.send(b"late listener")
        assert ch.recv(timeout=10) == b"late listener"
    child.wait(timeout=10)


def test_timeouts(spawn, name):
    code = """
import sys, interproc
ch = interproc.connect(sys.argv[1], timeout=10)
print("READY", flush=True)
sys.stdin.readline()
"""
    import subprocess

    with interproc.listen(f"shm://{name}?capacity=8KiB") as lst:
        child = spawn(code, f"shm://{name}", stdin=subprocess.PIPE)
        with lst.accept(timeout=10) as ch:
            wait_for_line(child, "READY")
            with pytest.raises(Timeout):
                ch.recv(timeout=0.1)
            with pytest.raises(Timeout):
                ch.recv(timeout=0)
            # Fill the ring: the child never reads.
            with pytest.raises(Timeout):
                for _ in range(100):
                    ch.send(bytes(1000), timeout=0.1)
            with pytest.raises(ValueError):
                ch.recv(timeout=-1)
        child.stdin.close()
        child.wait(timeout=10)
    with pytest.raises(Timeout):
        with interproc.listen(f"shm://{name}") as lst:
            lst.accept(timeout=0.05)


def test_recv_view_frees_ring_space_on_release(spawn, name):
    # 8 KiB ring, 2000-byte records: four fit.  While the oldest view is held,
    # nothing after it is freed either (space returns in ring order).
    code = """
import sys, interproc
ch = interproc.connect(sys.argv[1], timeout=10)
for i in range(6):
    ch.send(bytes([i]) * 2000)
print("SENT", flush=True)
ch.recv()
"""
    with interproc.listen(f"shm://{name}?capacity=8KiB") as lst:
        child = spawn(code, f"shm://{name}")
        with lst.accept(timeout=10) as ch:
            first = ch.recv_view(timeout=10)
            second = ch.recv_view(timeout=10)
            assert bytes(first[:3]) == b"\0\0\0" and bytes(second[:1]) == b"\1"
            second.release()  # out of order: nothing is freed yet
            assert ch.recv(timeout=10)[:1] == b"\2"
            assert ch.recv(timeout=10)[:1] == b"\3"
            with pytest.raises(Timeout):
                ch.recv(timeout=0.3)  # the writer is stuck behind `first`
            assert child.poll() is None
            first.release()
            assert [ch.recv(timeout=10)[:1] for _ in range(2)] == [b"\4", b"\5"]
            assert wait_for_line(child, "SENT")
            ch.send(b"go")
        child.wait(timeout=10)


def test_view_survives_close(echo):
    echo.send(b"keep me")
    view = echo.recv_view(timeout=10)
    echo.close()
    assert bytes(view) == b"keep me"
    view.release()


def test_many_messages_in_order_with_wraparound(spawn, name):
    n = 20000
    code = """
import sys, struct, interproc
ch = interproc.connect(sys.argv[1], timeout=10)
n = int(sys.argv[2])
for i in range(n):
    size = (i * 7919) % 3000
    ch.send(struct.pack("<I", i) + bytes([i % 251]) * size)
ch.close()
"""
    with interproc.listen(f"shm://{name}?capacity=16KiB") as lst:
        child = spawn(code, f"shm://{name}", str(n))
        with lst.accept(timeout=10) as ch:
            got = 0
            buf = bytearray(4000)
            for i, msg in enumerate(ch):
                assert struct.unpack_from("<I", msg)[0] == i
                size = (i * 7919) % 3000
                assert msg[4:] == bytes([i % 251]) * size
                got += 1
                if i % 3 == 0:  # mix in the other receive styles
                    try:
                        k = ch.recv_into(buf, timeout=10)
                    except ChannelClosed:
                        break
                    assert struct.unpack_from("<I", buf)[0] == i + 1 and k == 4 + ((i + 1) * 7919) % 3000
                    with ch.recv_view(timeout=10) as v:
                        assert struct.unpack_from("<I", v)[0] == i + 2
                    # keep numbering: enumerate skipped two
                    break
            # continue with a plain loop for the rest
            i = got + 1
            while True:
                try:
                    msg = ch.recv(timeout=10)
                except ChannelClosed:
                    break
                i += 1
                assert struct.unpack_from("<I", msg)[0] == i
            assert i == n - 1
        child.wait(timeout=10)


@pytest.mark.parametrize("policy", ["hybrid", "sleep", "spin"])
def test_sigkill_peer_wakes_receiver(spawn, name, policy):
    code = """
import sys, time, interproc
ch = interproc.connect(sys.argv[1], timeout=10)
ch.send(b"last words")
print("READY", flush=True)
time.sleep(60)
"""
    with interproc.listen(f"shm://{name}?policy={policy}") as lst:
        child = spawn(code, f"shm://{name}")
        with lst.accept(timeout=10) as ch:
            wait_for_line(child, "READY")
            threading.Timer(0.3, os.kill, (child.pid, signal.SIGKILL)).start()
            t0 = time.monotonic()
            assert ch.recv(timeout=30) == b"last words"  # drained first
            with pytest.raises(ChannelClosed, match="died"):
                ch.recv(timeout=30)
            assert time.monotonic() - t0 < 5  # a bound, not a benchmark
            assert ch.peer_closed
        child.wait(timeout=10)


def test_sigkill_reader_wakes_blocked_sender(spawn, name):
    code = """
import sys, time, interproc
ch = interproc.connect(sys.argv[1], timeout=10)
print("READY", flush=True)
time.sleep(60)
"""
    with interproc.listen(f"shm://{name}?capacity=8KiB") as lst:
        child = spawn(code, f"shm://{name}")
        with lst.accept(timeout=10) as ch:
            wait_for_line(child, "READY")
            threading.Timer(0.3, os.kill, (child.pid, signal.SIGKILL)).start()
            t0 = time.monotonic()
            with pytest.raises(ChannelClosed):
                for _ in range(100):
                    ch.send(bytes(1000), timeout=30)
            assert time.monotonic() - t0 < 5
        child.wait(timeout=10)


def test_close_semantics(spawn, name):
    code = """
import sys, interproc
ch = interproc.connect(sys.argv[1], timeout=10)
for i in range(3):
    ch.send(b"m%d" % i)
ch.close()
ch.close()
try:
    ch.send(b"x")
except interproc.ChannelClosed:
    print("SEND-AFTER-CLOSE", flush=True)
"""
    with interproc.listen(f"shm://{name}") as lst:
        child = spawn(code, f"shm://{name}")
        ch = lst.accept(timeout=10)
        assert wait_for_line(child, "SEND-AFTER-CLOSE")
        assert list(ch) == [b"m0", b"m1", b"m2"]
        with pytest.raises(ChannelClosed, match="closed"):
            ch.recv(timeout=1)
        with pytest.raises(ChannelClosed):
            ch.send(b"to nobody")
        ch.close()
        assert ch.closed
        with pytest.raises(ChannelClosed):
            ch.recv()
        child.wait(timeout=10)


def test_close_wakes_own_blocked_thread(echo):
    errors = []

    def reader():
        try:
            echo.recv(timeout=30)
        except ChannelClosed as exc:
            errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.2)
    echo.close()
    t.join(10)
    assert not t.is_alive() and errors


def test_ctrl_c_interrupts_recv(spawn, name):
    code = """
import sys, interproc
ch = interproc.connect(sys.argv[1], timeout=10, policy=sys.argv[2])
print("READY", flush=True)
try:
    ch.recv()
except KeyboardInterrupt:
    print("INTERRUPTED", flush=True)
"""
    with interproc.listen(f"shm://{name}") as lst:
        for policy in ("hybrid", "spin"):
            child = spawn(code, f"shm://{name}", policy)
            with lst.accept(timeout=10):
                wait_for_line(child, "READY")
                time.sleep(0.2)
                child.send_signal(signal.SIGINT)
                assert wait_for_line(child, "INTERRUPTED")
                child.wait(timeout=10)


def test_accept_many_connections(spawn, name):
    code = """
import sys, interproc
ch = interproc.connect(sys.argv[1], timeout=10)
ch.send(sys.argv[2].encode())
print(ch.recv().decode(), flush=True)
"""
    with interproc.listen(f"shm://{name}") as lst:
        children = [spawn(code, f"shm://{name}", f"client{i}") for i in range(3)]
        chans = [lst.accept(timeout=10) for _ in range(3)]
        hellos = sorted(ch.recv(timeout=10) for ch in chans)
        assert hellos == [b"client0", b"client1", b"client2"]
        for ch in chans:
            ch.send(b"reply")
        for child in children:
            assert wait_for_line(child, "reply")
            child.wait(timeout=10)
        for ch in chans:
            ch.close()
        with pytest.raises(interproc.AlreadyExists):
            interproc.listen(f"shm://{name}")
    with pytest.raises(NotFound):
        interproc.connect(f"shm://{name}")


def test_client_sends_and_exits_before_accept(spawn, name):
    code = """
import sys, interproc
with interproc.connect(sys.argv[1], timeout=10) as ch:
    ch.send(b"sent before accept")
"""
    with interproc.listen(f"shm://{name}") as lst:
        spawn.run(code, f"shm://{name}")
        with lst.accept(timeout=10) as ch:
            assert ch.recv(timeout=10) == b"sent before accept"
            with pytest.raises(ChannelClosed):
                ch.recv(timeout=10)


def test_listener_close_rejects_queued_client(spawn, name):
    code = """
import sys, interproc
ch = interproc.connect(sys.argv[1], timeout=10)
print("CONNECTED", flush=True)
try:
    ch.recv(timeout=30)
except interproc.ChannelClosed:
    print("REJECTED", flush=True)
"""
    lst = interproc.listen(f"shm://{name}")
    child = spawn(code, f"shm://{name}")
    wait_for_line(child, "CONNECTED")
    lst.close()
    assert wait_for_line(child, "REJECTED")
    child.wait(timeout=10)


# -- corruption from a third process ------------------------------------------

CORRUPT = """
import mmap, os, struct, sys
path, off, fmt, value = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
fd = os.open(path, os.O_RDWR)
m = mmap.mmap(fd, os.fstat(fd).st_size)
struct.pack_into(fmt, m, off, value)
m.close()
os.close(fd)
"""

RING0, RING1, DATA = 256, 512, 4096  # user-area offsets (see src/native/ring.c)


@pytest.mark.parametrize("target,fmt,value", [
    ("head", "<Q", 1 << 40),        # head far past the ring
    ("head", "<Q", 12),             # unaligned, partial record
    ("len", "<I", 0xFFFFFFF0),      # record longer than the ring
    ("len", "<I", 5000),            # record longer than what was published
    ("tag", "<I", 0xDEAD),          # unknown record kind
])
def test_corrupted_ring_is_a_protocol_error(spawn, name, target, fmt, value):
    # The child (side B) sends on ring 1; we receive it after a third process
    # scribbled over the ring.
    code = """
import sys, interproc
ch = interproc.connect(sys.argv[1], timeout=10)
ch.send(b"0123456789abcdef")
print("SENT", flush=True)
sys.stdin.readline()
"""
    import subprocess

    with interproc.listen(f"shm://{name}?capacity=8KiB") as lst:
        child = spawn(code, f"shm://{name}", stdin=subprocess.PIPE)
        with lst.accept(timeout=10) as ch:
            wait_for_line(child, "SENT")
            cap = ch.capacity
            off = {"head": RING1, "len": DATA + cap, "tag": DATA + cap + 4}[target]
            spawn.run(CORRUPT, _seg_path(name), str(HEADER_SIZE + off), fmt, str(value))
            with pytest.raises(ProtocolError, match="corrupted"):
                ch.recv(timeout=5)
            with pytest.raises(ProtocolError):  # stays broken, never reads garbage
                ch.recv(timeout=5)
        child.stdin.close()
        child.wait(timeout=10)


def test_corrupted_tail_is_a_protocol_error_for_the_sender(spawn, name):
    code = """
import sys, interproc
ch = interproc.connect(sys.argv[1], timeout=10)
print("READY", flush=True)
sys.stdin.readline()
"""
    import subprocess

    with interproc.listen(f"shm://{name}?capacity=8KiB") as lst:
        child = spawn(code, f"shm://{name}", stdin=subprocess.PIPE)
        with lst.accept(timeout=10) as ch:
            wait_for_line(child, "READY")
            ch.send(bytes(3000))
            ch.send(bytes(3000))
            # Tail of ring 0 (consumer: the child) jumps past our head.
            spawn.run(CORRUPT, _seg_path(name), str(HEADER_SIZE + RING0 + 64), "<Q", str(1 << 50))
            with pytest.raises(ProtocolError):
                ch.send(bytes(3000), timeout=5)
        child.stdin.close()
        child.wait(timeout=10)


def test_corrupted_control_block_is_refused(spawn, name):
    code = """
import sys, interproc
ch = interproc.connect(sys.argv[1], timeout=10)
print("READY", flush=True)
sys.stdin.readline()
"""
    import subprocess

    with interproc.listen(f"shm://{name}") as lst:
        child = spawn(code, f"shm://{name}", stdin=subprocess.PIPE)
        wait_for_line(child, "READY")
        # Before accept: claim a capacity larger than the segment.
        spawn.run(CORRUPT, _seg_path(name), str(HEADER_SIZE + 8), "<Q", str(1 << 30))
        with pytest.raises(ProtocolError):
            lst.accept(timeout=10)
        child.stdin.close()
        child.wait(timeout=10)
        with pytest.raises(Timeout):
            lst.accept(timeout=0.1)  # the listener goes on


# -- ls and gc -------------------------------------------------------------------

def test_ls_shows_channels(echo, name):
    from interproc import _registry
    from interproc.cli._objects import load_kinds

    load_kinds()
    objs = {(o.kind, o.name): o for o in _registry.list_objects()}
    lst = objs[("chanlisten", name)]
    assert lst.details["listener_pid"] == os.getpid() and lst.details["connections"] == 1
    chan = next(o for (kind, n), o in objs.items() if kind == "chan" and n.startswith(f"{name}."))
    assert chan.state == "alive"
    assert chan.details["accepted"] and chan.details["server_pid"] == os.getpid()
    assert chan.details["client"] == "alive" and chan.details["capacity"] == 4 << 20


def test_gc_collects_unaccepted_connection_of_dead_processes(spawn, name):
    listener = """
import sys, time, interproc
lst = interproc.listen(sys.argv[1])
print("LISTENING", flush=True)
time.sleep(60)
"""
    client = """
import sys, time, interproc
ch = interproc.connect(sys.argv[1], timeout=10)
ch.send(b"never read")
print("CONNECTED", flush=True)
time.sleep(60)
"""
    from interproc import _registry
    from interproc.cli._objects import load_kinds

    a = spawn(listener, f"shm://{name}")
    wait_for_line(a, "LISTENING")
    b = spawn(client, f"shm://{name}")
    wait_for_line(b, "CONNECTED")
    for p in (a, b):
        p.kill()
        p.wait(timeout=10)
    path = _seg_path(name)
    assert os.path.exists(path)  # persistent until accepted
    load_kinds()
    removed = _registry.collect()
    assert any(o.kind == "chan" and o.path == path for o in removed)
    assert not os.path.exists(path)


def test_dead_listener_is_not_found_and_its_name_reusable(spawn, name):
    code = """
import sys, time, interproc
lst = interproc.listen(sys.argv[1])
print("LISTENING", flush=True)
time.sleep(60)
"""
    child = spawn(code, f"shm://{name}")
    wait_for_line(child, "LISTENING")
    child.kill()
    child.wait(timeout=10)
    with pytest.raises(NotFound):
        interproc.connect(f"shm://{name}")
    with interproc.listen(f"shm://{name}") as lst:  # takes the name over
        with interproc.connect(f"shm://{name}") as c, lst.accept(timeout=10) as s:
            c.send(b"again")
            assert s.recv(timeout=10) == b"again"


def test_global_scope(name):
    import stat

    with interproc.listen(f"shm://{name}", scope="global", mode=0o640) as lst:
        with interproc.connect(f"shm://{name}", scope="global") as c, lst.accept(timeout=10) as s:
            c.send(b"shared")
            assert s.recv(timeout=10) == b"shared"
            assert not c.trusted and not s.trusted  # other users may reach it: no pickle
            path = os.path.join("/dev/shm", segment_name("chan", c.name, "global"))
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
            with pytest.raises(interproc.PermissionDenied):
                c.set_codec("pickle")
    with pytest.raises(ValueError, match="mode"):
        interproc.listen(f"shm://{name}", scope="global")


def test_two_threads_accepting_get_distinct_connections(spawn, name):
    code = """
import sys, interproc
ch = interproc.connect(sys.argv[1], timeout=10)
ch.send(sys.argv[2].encode())
ch.recv()
"""
    with interproc.listen(f"shm://{name}") as lst:
        got, errors = [], []

        def acceptor():
            try:
                ch = lst.accept(timeout=20)
                got.append((ch, ch.recv(timeout=20)))
            except Exception as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=acceptor) for _ in range(2)]
        for t in threads:
            t.start()
        children = [spawn(code, f"shm://{name}", f"c{i}") for i in range(2)]
        for t in threads:
            t.join(30)
        assert not errors
        assert sorted(m for _, m in got) == [b"c0", b"c1"]
        for ch, _ in got:
            ch.send(b"bye")
            ch.close()
        for child in children:
            child.wait(timeout=10)
