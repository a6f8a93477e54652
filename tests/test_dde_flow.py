"""DDE flow control between real processes: a client that stops reading blocks nobody; the
batch receive under local hot links (PubSubCore.recv_available) keeps order and counts drops."""

from __future__ import annotations

import json
import subprocess

import pytest

from interproc import dde
from interproc.shm import Publisher, Subscriber

# A client that speaks the documented wire (docs/dde.md) over a plain socket, takes a hot
# link with ack=True (every value is queued for it) and then never reads again.
STUCK = """
import json, os, socket, struct, sys, time
path = os.path.join(os.environ["INTERPROC_RUNTIME_DIR"], f"dde.{sys.argv[1]}.sock")
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fill up early
s.settimeout(10)
s.connect(path)
def recv_exact(n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise SystemExit("server closed")
        buf += chunk
    return buf
def send(obj):
    body = json.dumps(obj).encode()
    s.sendall(struct.pack(">Q", len(body)) + body)
def recv():
    (n,) = struct.unpack(">Q", recv_exact(8))
    return json.loads(recv_exact(n))
assert recv()["status"] == "ok"
send({"proto": "interproc/1", "kind": "socket"})
send({"id": 1, "op": "initiate", "service": sys.argv[1], "topic": "T"})
assert recv()["ok"] is True
for i, item in enumerate(("X", "Y")):
    send({"id": 2 + i, "op": "advise", "item": item, "hot": True, "ack": item == "X"})
    assert recv()["ok"] is True
print("stuck", flush=True)
sys.stdin.readline()  # reads nothing more from the server until told to leave
"""

FOLLOWER = """
import json, sys, threading
from interproc import dde
conv = dde.connect(sys.argv[1], "T", timeout=10)
done = threading.Event()
seen = []
def on(item, value):
    seen.append(value)
    if value == "FINAL":
        done.set()
link = conv.advise("X", hot=True, callback=on)
print("linked", flush=True)
assert done.wait(30), "the final value never arrived"
print(json.dumps({"last": seen[-1], "count": len(seen), "dropped": link.dropped}), flush=True)
conv.close()
"""


def test_a_client_that_stops_reading_blocks_neither_the_server_nor_other_clients(spawn, name):
    with dde.Server(name) as srv:
        srv.set("T", "X", "0")
        srv.set("T", "Y", "0")
        srv.start()
        stuck = spawn(STUCK, name, stdin=subprocess.PIPE)
        assert stuck.stdout.readline().strip() == "stuck", stuck.stderr.read()
        follower = spawn(FOLLOWER, name)
        assert follower.stdout.readline().strip() == "linked", follower.stderr.read()
        value = "v" * 1000
        for i in range(3000):  # ~3 MB at the stuck client: far past every socket buffer
            srv.set("T", "X", f"{i}:{value}")
            srv.set("T", "Y", f"{i}:{value}")
        srv.set("T", "X", "FINAL")
        out, err = follower.communicate(timeout=40)
        assert follower.returncode == 0, err
        got = json.loads(out.strip().splitlines()[-1])
        assert got["last"] == "FINAL"
        assert got["count"] + got["dropped"] == 3001  # each of 3000 values and FINAL: delivered or counted
        assert srv.conversations >= 1  # the stuck client is still connected: nothing gave up on it
        assert srv.get("T", "X") == "FINAL"
        stuck.stdin.write("bye\n")
        stuck.stdin.flush()
        stuck.communicate(timeout=20)


PUBLISH = """
import sys, time
from interproc.shm import Publisher
pub = Publisher.create(sys.argv[1], 64, 256)
print("ready", flush=True)
for line in sys.stdin:
    n = int(line)
    if n < 0:
        break
    for _ in range(n):
        pub.send(b"%d" % pub.published, timeout=5)
    print("sent", flush=True)
pub.close()
"""


def test_recv_available_takes_what_is_published_in_order_and_counts_what_it_missed(spawn, name):
    proc = spawn(PUBLISH, name, stdin=subprocess.PIPE)
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    sub = Subscriber.open(name, policy="drop_oldest", timeout=10)
    try:
        drain = sub._core.recv_available
        assert drain(16) == []  # nothing yet, and no wait
        proc.stdin.write("10\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "sent"
        assert drain(4) == [b"0", b"1", b"2", b"3"]  # at most max
        assert drain(100) == [b"%d" % i for i in range(4, 10)]
        proc.stdin.write("1000\n")  # laps the 256-slot ring many times before we look
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "sent"
        got = drain(10_000)
        assert got[-1] == b"1009"  # the newest always arrives
        numbers = [int(x) for x in got]
        assert numbers == list(range(numbers[0], 1010))  # in order, no gap after the skip
        assert sub.dropped == numbers[0] - 10 and sub.received == 10 + len(got)
        # (max, prefix): a sample that starts with prefix comes as the str after it
        proc.stdin.write("3\n")  # 1010, 1011, 1012
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "sent"
        assert drain((2, b"101")) == ["0", "1"]
        proc.stdin.write("1\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "sent"
        assert drain((5, b"x")) == [b"1012", b"1013"]  # no match: bytes, as without a prefix
        with pytest.raises(TypeError, match="prefix"):
            drain((3, "1"))
        with pytest.raises(ValueError, match="at least 1"):
            drain(0)
        with pytest.raises(TypeError):
            drain("3")
        proc.stdin.write("-1\n")
        proc.stdin.flush()
        proc.communicate(timeout=20)
    finally:
        sub.close()
    block_pub = Publisher.create(name + "b", 64, 8)
    try:
        with Subscriber.open(name + "b") as block:
            with pytest.raises(ValueError, match="drop_oldest"):
                block._core.recv_available(4)
    finally:
        block_pub.close()


ACKER = FOLLOWER.replace('callback=on)', 'callback=on, ack=True)').replace(
    '"count": len(seen)', '"seen": seen')


def test_a_socket_link_that_joins_an_item_only_shared_memory_took_gets_every_value(spawn, name):
    # set() takes a shortcut for items that only local hot links (shared memory) take; a
    # socket link (ack=True) that comes later must end it: every value reaches it, in order.
    with dde.Server(name) as srv:
        srv.set("T", "X", "0")
        srv.start()
        follower = spawn(FOLLOWER, name)
        assert follower.stdout.readline().strip() == "linked", follower.stderr.read()
        for i in range(100):
            srv.set("T", "X", f"warm{i}")
        acker = spawn(ACKER, name)
        assert acker.stdout.readline().strip() == "linked", acker.stderr.read()
        values = [f"v{i}" for i in range(200)]
        for v in values:
            srv.set("T", "X", v)
        srv.set("T", "X", "FINAL")
        for proc in (follower, acker):
            out, err = proc.communicate(timeout=40)
            assert proc.returncode == 0, err
        got = json.loads(out.strip().splitlines()[-1])["seen"]
        assert [v for v in got if v.startswith("v") or v == "FINAL"] == values + ["FINAL"]
