"""Local mailslots across real processes: queueing, limits, faults, permissions."""

from __future__ import annotations

import io
import json
import mmap
import os
import signal
import stat
import struct
import subprocess
import sys
import time

import pytest

import interproc
from interproc import _registry
from interproc._naming import segment_name
from interproc.mailslot import Mailslot, MailslotWriter, Pending

from conftest import SRC, wait_for_line


def seg_path(name: str, scope: str = "user") -> str:
    return os.path.join("/dev/shm", segment_name("mailslot", name, scope))


def payload(writer: int, i: int) -> bytes:
    """A message whose content can be checked: who, which, and a patterned body."""
    return f"{writer}:{i}:".encode() + bytes([(writer * 31 + i) % 251]) * (i % 97)


def check_payload(msg: bytes) -> tuple[int, int]:
    writer, i, body = msg.split(b":", 2)
    w, n = int(writer), int(i)
    assert body == bytes([(w * 31 + n) % 251]) * (n % 97), f"corrupt message {msg[:40]!r}"
    return w, n


WRITER = """
import sys
from interproc.mailslot import Mailslot
name, writer, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(count):
    Mailslot.write(name, f"{writer}:{i}:".encode() + bytes([(writer * 31 + i) % 251]) * (i % 97), timeout=30)
print("DONE", flush=True)
"""


def test_write_from_other_process_and_pending(name, spawn):
    with Mailslot.create(name, max_message_size=1024) as slot:
        assert slot.pending() == Pending(0, None)
        spawn.run(
            "import sys; from interproc.mailslot import Mailslot\n"
            "Mailslot.write(sys.argv[1], b'hello'); Mailslot.write(sys.argv[1], b'')\n"
            "Mailslot.write(sys.argv[1], bytearray(1024))\n",
            name,
        )
        assert slot.pending() == Pending(3, 5)
        assert slot.read(timeout=5) == b"hello"
        assert slot.pending() == Pending(2, 0)
        assert slot.read(timeout=5) == b""
        assert slot.read(timeout=5) == bytes(1024)
        assert slot.pending() == Pending(0, None)
        with pytest.raises(interproc.Timeout):
            slot.read(timeout=0.05)
        with pytest.raises(interproc.Timeout):
            slot.read_nowait()


def test_read_wakes_when_a_writer_process_writes(name, spawn):
    with Mailslot.create(name) as slot:
        proc = spawn(
            "import sys, time; from interproc.mailslot import Mailslot\n"
            "time.sleep(0.3); Mailslot.write(sys.argv[1], b'late')\n",
            name,
        )
        assert slot.read(timeout=20) == b"late"
        proc.wait(10)


def test_many_writer_processes_in_order_per_writer(name, spawn):
    # A small queue so the writers keep filling it and must wait for the reader.
    writers, count = 8, 300
    with Mailslot.create(name, max_messages=16) as slot:
        procs = [spawn(WRITER, name, str(w), str(count)) for w in range(writers)]
        seen = {w: -1 for w in range(writers)}
        for _ in range(writers * count):
            w, i = check_payload(slot.read(timeout=20))
            assert i == seen[w] + 1, f"writer {w}: message {i} after {seen[w]}"
            seen[w] = i
        assert all(v == count - 1 for v in seen.values())
        for p in procs:
            assert p.wait(10) == 0
        assert slot.pending().count == 0


BUSY_SERVER = """
import json, select, sys
from interproc.mailslot import Mailslot
slot = Mailslot.create(sys.argv[1])
print("READY", flush=True)
# Busy in pure Python, holding the GIL, never reading -- until told to stop.
n = 0
while not select.select([sys.stdin], [], [], 0)[0]:
    n += sum(range(2000))
sys.stdin.readline()
queued = slot.pending().count
order = {}
for _ in range(queued):
    msg = slot.read(timeout=5)
    writer, i, body = msg.split(b":", 2)
    w, i = int(writer), int(i)
    assert body == bytes([(w * 31 + i) % 251]) * (i % 97), msg
    assert order.get(w, -1) + 1 == i, (w, i, order.get(w))
    order[w] = i
print(json.dumps({"queued": queued, "last": order}), flush=True)
slot.close()
"""


@pytest.mark.timeout(120)
def test_ten_thousand_messages_queue_while_server_is_busy(name, spawn):
    server = spawn(BUSY_SERVER, name, stdin=subprocess.PIPE)
    wait_for_line(server, "READY")
    writers = [spawn(WRITER, name, str(w), "2500") for w in range(4)]
    for p in writers:
        out, err = p.communicate(timeout=90)
        assert p.returncode == 0, err
        assert "DONE" in out
    # 10,000 queued and the server never read one: the next write finds the queue full.
    with pytest.raises(interproc.Timeout):
        Mailslot.write(name, b"one too many", timeout=0.2)
    out, err = server.communicate("go\n", timeout=60)
    assert server.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["queued"] == 10_000
    assert result["last"] == {str(w): 2499 for w in range(4)}


def test_max_message_size_enforced(name, spawn):
    with Mailslot.create(name, max_message_size=100) as slot:
        out = spawn.run(
            "import sys; from interproc.mailslot import Mailslot\n"
            "from interproc import MessageTooLarge\n"
            "Mailslot.write(sys.argv[1], b'x' * 100)\n"
            "try:\n"
            "    Mailslot.write(sys.argv[1], b'x' * 101)\n"
            "except MessageTooLarge as e:\n"
            "    print('TOO LARGE', e)\n",
            name,
        )
        assert "TOO LARGE" in out and "101 bytes" in out and "100" in out
        assert slot.read(timeout=5) == b"x" * 100
        assert slot.pending().count == 0  # the refused message left nothing behind
        with pytest.raises(ValueError):  # MessageTooLarge is a ValueError
            Mailslot.write(name, b"y" * 1000)


def test_large_messages_wrap_around_the_ring(name):
    # queue_bytes just above one record: every message wraps somewhere new.
    with Mailslot.create(name, max_message_size=5000, queue_bytes=12_000) as slot:
        for i in range(50):
            msg = bytes([i]) * (1000 + 97 * i % 4000)
            Mailslot.write(name, msg)
            Mailslot.write(name, memoryview(msg)[:7])
            assert slot.read(timeout=1) == msg
            assert slot.read(timeout=1) == msg[:7]


def test_full_queue_write_waits_then_times_out_or_proceeds(name, spawn):
    with Mailslot.create(name, max_messages=3) as slot:
        for i in range(3):
            Mailslot.write(name, b"%d" % i)
        t0 = time.monotonic()
        with pytest.raises(interproc.Timeout):
            Mailslot.write(name, b"x", timeout=0.3)
        assert time.monotonic() - t0 >= 0.29
        # A writer process blocked on the full queue proceeds once we read.
        proc = spawn(
            "import sys; from interproc.mailslot import Mailslot\n"
            "print('WRITING', flush=True); Mailslot.write(sys.argv[1], b'waited', timeout=30); print('WROTE', flush=True)\n",
            name,
        )
        wait_for_line(proc, "WRITING")
        time.sleep(0.2)
        assert proc.poll() is None  # still waiting for space
        assert slot.read(timeout=1) == b"0"
        wait_for_line(proc, "WROTE")
        assert [slot.read(timeout=5) for _ in range(3)] == [b"1", b"2", b"waited"]


SERVER = """
import sys
from interproc.mailslot import Mailslot
slot = Mailslot.create(sys.argv[1], max_messages=int(sys.argv[2]))
print("READY", flush=True)
sys.stdin.read()
"""

BLOCKED_WRITER = """
import sys
from interproc.mailslot import Mailslot
print("WRITING", flush=True)
try:
    Mailslot.write(sys.argv[1], b"blocked")
except Exception as exc:
    print("RAISED", type(exc).__name__, flush=True)
"""


def _registry_in_child(spawn, action: str) -> list[dict]:
    out = spawn.run(
        "import json; from interproc import _registry; import interproc._mailslot\n"
        f"objs = _registry.{action}()\n"
        "print(json.dumps([o.as_dict() for o in objs if o.kind == 'mailslot']))\n"
    )
    return json.loads(out.strip().splitlines()[-1])


def test_server_killed_writers_fail_instead_of_hanging(name, spawn):
    server = spawn(SERVER, name, "2", stdin=subprocess.PIPE)
    wait_for_line(server, "READY")
    Mailslot.write(name, b"1")
    Mailslot.write(name, b"2")  # the queue is full now
    channel = Mailslot.open(name)
    blocked = spawn(BLOCKED_WRITER, name)
    wait_for_line(blocked, "WRITING")
    listed = {o["name"]: o for o in _registry_in_child(spawn, "list_objects")}
    assert listed[name]["state"] == "alive" and listed[name]["owner_pid"] == server.pid

    os.kill(server.pid, signal.SIGKILL)
    server.wait(10)
    assert "RAISED NotFound" in wait_for_line(blocked, "RAISED", timeout=10)
    with pytest.raises(interproc.NotFound):
        Mailslot.write(name, b"after", timeout=5)
    with pytest.raises(interproc.ChannelClosed):
        channel.send(b"after", timeout=5)
    channel.close()

    # The dead server's segment is stale for ls and removed by gc.  (Another
    # test session on this machine may run gc too and get there first.)
    listed = {o["name"]: o for o in _registry_in_child(spawn, "list_objects")}
    if name in listed:
        assert listed[name]["state"] == "stale"
        removed = _registry_in_child(spawn, "collect")
        assert name in [o["name"] for o in removed] or not os.path.exists(seg_path(name))
        assert all(o["state"] == "stale" for o in removed)
    assert not os.path.exists(seg_path(name))


def test_create_takes_over_a_dead_servers_name_but_not_a_live_one(name, spawn):
    server = spawn(SERVER, name, "10", stdin=subprocess.PIPE)
    wait_for_line(server, "READY")
    with pytest.raises(interproc.AlreadyExists):
        Mailslot.create(name)
    Mailslot.write(name, b"lost with its server")
    server.kill()
    server.wait(10)
    with Mailslot.create(name) as slot:
        assert slot.pending().count == 0
        Mailslot.write(name, b"new")  # the cached mapping of the old one is not used
        assert slot.read(timeout=1) == b"new"


def test_closed_server_refuses_writes(name):
    slot = Mailslot.create(name)
    ch = interproc.connect(f"mailslot://{name}")
    slot.close()
    assert not os.path.exists(seg_path(name))
    with pytest.raises(interproc.NotFound):
        Mailslot.write(name, b"x")
    with pytest.raises(interproc.ChannelClosed):
        ch.send(b"x")
    ch.close()
    with pytest.raises(interproc.HandleClosed):
        slot.read(timeout=0)
    with pytest.raises(interproc.HandleClosed):
        ch.send(b"x")


def test_no_server_is_not_found(name):
    with pytest.raises(interproc.NotFound):
        Mailslot.write(name, b"x")
    with pytest.raises(interproc.NotFound):
        interproc.connect(f"mailslot://{name}")


def test_user_scope_is_private(name):
    with Mailslot.create(name) as slot:
        st = os.stat(seg_path(name))
        assert stat.S_IMODE(st.st_mode) == 0o600
        assert st.st_uid == os.getuid()
        os.chmod(seg_path(name), 0o644)  # someone loosened it: refuse to trust it
        with pytest.raises(interproc.PermissionDenied, match="0600"):
            Mailslot.write(name, b"x")
        os.chmod(seg_path(name), 0o600)
        Mailslot.write(name, b"ok")
        assert slot.read(timeout=1) == b"ok"
    with pytest.raises(ValueError, match="scope='global'"):
        Mailslot.create(name, mode=0o644)


def _write_as_nobody(name: str, scope: str) -> str:
    """Fork a process that drops to uid 65534 and tries to write; returns the outcome."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                Mailslot.write(name, b"from nobody", scope=scope, timeout=1)
                result = "written"
            except Exception as exc:
                result = type(exc).__name__
            os.write(w, result.encode())
        finally:
            os._exit(0)
    os.close(w)
    try:
        return os.read(r, 100).decode()
    finally:
        os.close(r)
        os.waitpid(pid, 0)


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to run a process as another uid")
def test_other_uid_refused(name):
    with Mailslot.create(name, scope="global", mode=0o600) as slot:
        assert stat.S_IMODE(os.stat(seg_path(name, "global")).st_mode) == 0o600
        assert _write_as_nobody(name, "global") == "PermissionDenied"
    with Mailslot.create(name, scope="global", mode=0o666) as slot:
        assert stat.S_IMODE(os.stat(seg_path(name, "global")).st_mode) == 0o666
        assert _write_as_nobody(name, "global") == "written"
        assert slot.read(timeout=5) == b"from nobody"
    with Mailslot.create(name) as slot:
        # Another uid's user scope is another name space altogether.
        assert _write_as_nobody(name, "user") == "NotFound"


def test_global_scope_needs_mode(name, spawn):
    with pytest.raises(ValueError, match="mode"):
        Mailslot.create(name, scope="global")
    with Mailslot.create(name, scope="global", mode=0o640) as slot:
        assert stat.S_IMODE(os.stat(seg_path(name, "global")).st_mode) == 0o640
        spawn.run("import sys; from interproc.mailslot import Mailslot; Mailslot.write(sys.argv[1], b'g', scope='global')", name)
        assert slot.read(timeout=5) == b"g"
        with pytest.raises(interproc.NotFound):  # not the user-scope one
            Mailslot.write(name, b"u")


@pytest.mark.parametrize("bad", ["", "a/b", "a b", "x" * 129, "..", "é"])
def test_names_validated(bad):
    with pytest.raises(ValueError):
        Mailslot.create(bad)
    with pytest.raises(ValueError):
        Mailslot.write(bad, b"x")
    with pytest.raises(ValueError):
        Mailslot.open(bad)


def test_bad_arguments(name):
    with pytest.raises(ValueError, match="max_messages"):
        Mailslot.create(name, max_messages=0)
    with pytest.raises(ValueError, match="scope"):
        Mailslot.write(name, b"x", scope="galaxy")
    with pytest.raises(ValueError, match="timeout"):
        Mailslot.write(name, b"x", timeout=-1)
    with pytest.raises(TypeError):
        Mailslot.write(name, "text is not bytes")


def test_connect_gives_a_write_only_channel(name, spawn):
    with Mailslot.create(name) as slot:
        out = spawn.run(
            "import sys, io, interproc\n"
            "ch = interproc.connect('mailslot://' + sys.argv[1])\n"
            "ch.send(b'raw'); ch.send_obj({'n': 1})\n"
            "if isinstance(ch, interproc.SendChannel) and not hasattr(ch, 'recv'):\n"
            "    print('WRITE-ONLY', 'write-only')\n"
            "ch.close()\n",
            name,
        )
        assert "WRITE-ONLY" in out and "write-only" in out
        assert slot.read(timeout=5) == b"raw"
        assert json.loads(slot.read(timeout=5)) == {"n": 1}
        with interproc.connect(f"mailslot://{name}") as ch:
            assert isinstance(ch, MailslotWriter)
            assert isinstance(ch, interproc.SendChannel) and not isinstance(ch, interproc.ReceiveChannel)
            assert not hasattr(ch, "recv")
    with pytest.raises(ValueError, match="option"):
        interproc.connect(f"mailslot://{name}?colour=blue")


def test_connect_with_timeout_waits_for_the_server(name, spawn):
    server = spawn(
        "import sys, time; from interproc.mailslot import Mailslot\n"
        "time.sleep(0.4); slot = Mailslot.create(sys.argv[1]); print('MSG', slot.read(timeout=20).decode(), flush=True)\n",
        name,
    )
    with interproc.connect(f"mailslot://{name}", timeout=20) as ch:
        ch.send(b"found you")
    assert wait_for_line(server, "MSG") == "MSG found you"
    server.wait(10)


def test_corrupt_segment_is_a_protocol_error(name):
    with Mailslot.create(name) as slot:
        Mailslot.write(name, b"fine")
        with open(seg_path(name), "r+b") as f, mmap.mmap(f.fileno(), 0) as mm:
            ring = 256
            struct.pack_into("<II", mm, ring, 10**6, 0)  # a record header claiming 1 MB
            with pytest.raises(interproc.ProtocolError):
                slot.read(timeout=1)
            struct.pack_into("<Q", mm, 64, 2**62)  # tail far beyond the ring
            with pytest.raises(interproc.ProtocolError):
                slot.pending()
            with pytest.raises(interproc.ProtocolError):
                Mailslot.write(name, b"x")
            struct.pack_into("<QQQ", mm, 56, 0, 0, 0)  # repaired: empty and usable again
        Mailslot.write(name, b"again")
        assert slot.read(timeout=1) == b"again"


def test_writer_killed_holding_the_lock_leaves_queue_usable(name, spawn):
    # A writer SIGKILLed while it holds the robust mutex: the next user gets
    # the abandoned lock, recounts the ring and carries on.
    with Mailslot.create(name) as slot:
        Mailslot.write(name, b"before")
        proc = spawn(
            "import sys, time\n"
            "from interproc import _native\n"
            "from interproc._mailslot import open_queue\n"
            "q = open_queue(sys.argv[1], 'user')\n"
            "_native.mutex_lock(q.mm, 128)\n"
            "print('LOCKED', flush=True); time.sleep(60)\n",
            name,
        )
        wait_for_line(proc, "LOCKED")
        proc.kill()
        proc.wait(10)
        Mailslot.write(name, b"after", timeout=5)
        assert slot.pending() == Pending(2, 6)
        assert [slot.read(timeout=1), slot.read(timeout=1)] == [b"before", b"after"]


def test_iteration_and_numpy_buffers(name):
    np = pytest.importorskip("numpy")
    with Mailslot.create(name) as slot:
        arr = np.arange(16, dtype=np.int32)
        Mailslot.write(name, arr)
        assert np.frombuffer(slot.read(timeout=1), dtype=np.int32).tolist() == list(range(16))
        with pytest.raises(ValueError, match="contiguous"):
            Mailslot.write(name, arr[::2])
        Mailslot.write(name, b"a")
        it = iter(slot)
        assert next(it) == b"a"


def test_cli_write_and_read(name, spawn):
    env = dict(os.environ, PYTHONPATH=SRC)
    with Mailslot.create(name) as slot:
        subprocess.run([sys.executable, "-m", "interproc", "mailslot", "write", name, "hi there"], check=True, env=env, timeout=30)
        assert slot.read(timeout=5) == b"hi there"
    reader = subprocess.Popen(
        [sys.executable, "-m", "interproc", "mailslot", "read", name, "--count", "2", "--timeout", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(seg_path(name)) and time.monotonic() < deadline:
            time.sleep(0.05)
        Mailslot.write(name, b"one")
        Mailslot.write(name, b"two")
        out, err = reader.communicate(timeout=30)
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()
    assert reader.returncode == 0, err
    assert out.splitlines() == ["one", "two"]
    res = subprocess.run([sys.executable, "-m", "interproc", "mailslot", "write", name, "x"], env=env, capture_output=True, text=True, timeout=30)
    assert res.returncode == 1 and "no server" in res.stderr


def test_public_names_complete():
    import interproc.mailslot as mod

    public = {n for n in dir(mod) if not n.startswith("_") and n != "annotations"}
    assert set(mod.__all__) == public
    assert list(mod.__all__) == sorted(mod.__all__)


def test_writer_cache_forgets_closed_mailslots(name_factory):
    from interproc._mailslot import writers as _cache

    a, b = name_factory(), name_factory()
    slot_a = Mailslot.create(a)
    Mailslot.write(a, b"x")
    assert _cache.lookup(a, "user") is not None
    slot_a.close()
    with Mailslot.create(b) as slot_b:
        Mailslot.write(b, b"y")  # caching b sweeps out the closed a
        assert _cache.lookup(a, "user") is None
        assert slot_b.read(timeout=1) == b"y"


def test_close_from_another_thread_ends_a_blocked_read(name):
    import threading

    slot = Mailslot.create(name)
    errors = []

    def reader():
        try:
            slot.read(timeout=20)
        except Exception as exc:
            errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.2)
    slot.close()
    t.join(10)
    assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], interproc.HandleClosed)
