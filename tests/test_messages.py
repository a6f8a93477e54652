"""Window messages between real processes: send, post, copy_data, broadcast, register_message."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import threading
import time

import pytest

import interproc
from interproc import messages
from interproc._messages._protocol import HEADER, SEND, WindowCore, encode_request

# A child that owns window argv[1]: it answers REPORT with the posted wparams
# it has seen, echoes copy_data as a digest, raises on BOOM, sleeps on SLOW.
# argv[2] = "pump" (run the loop) or "idle" (never pump; max_queue=50).
WINDOW_CHILD = """
import hashlib, sys, time
from interproc import messages
name, how = sys.argv[1], sys.argv[2]
win = messages.Window(name, max_queue=50 if how == "idle" else 10_000)
if how == "idle":
    win._core.hung_after = 0.5   # SMTO_ABORTIFHUNG's 5 s, shortened for the test
seen = []
POST, REPORT, BOOM, SLOW, QUIT = 0x400, 0x401, 0x402, 0x403, 0x404
win.handler(POST)(lambda m: seen.append(m.wparam))
win.handler(REPORT)(lambda m: {"seen": seen, "pid": m.sender_pid, "uid": m.sender_uid})
win.handler(messages.WM_COPYDATA)(lambda m: [len(m.data), m.tag, hashlib.sha256(m.data).hexdigest()])
def boom(m):
    raise KeyError("no such setting")
win.handler(BOOM)(boom)
win.handler(SLOW)(lambda m: time.sleep(60))
win.handler(QUIT)(lambda m: win.quit())
print("ready", flush=True)
if how == "pump":
    win.run()
else:
    sys.stdin.read()
win.close()
"""
POST, REPORT, BOOM, SLOW, QUIT = 0x400, 0x401, 0x402, 0x403, 0x404


def start_window(spawn, name: str, how: str = "pump"):
    proc = spawn(WINDOW_CHILD, name, how, stdin=-1)
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    return proc


def stop_window(proc, name: str) -> None:
    messages.send_message(name, QUIT, timeout=10)
    proc.wait(timeout=10)


def test_thousand_posts_arrive_in_order_and_send_waits_for_the_result(spawn, name):
    proc = start_window(spawn, name)
    for i in range(1000):
        messages.post_message(name, POST, i, 0)
    # sent messages go before posted ones (as GetMessage dispatches them), so ask until all are in
    deadline = time.monotonic() + 30
    while len((report := messages.send_message(name, REPORT, timeout=10))["seen"]) < 1000:
        assert time.monotonic() < deadline, f"only {len(report['seen'])} posts arrived"
        time.sleep(0.05)
    assert report["seen"] == list(range(1000))
    assert report["pid"] == os.getpid() and report["uid"] == os.getuid()
    assert messages.find_window(name) == (name, proc.pid)
    assert (name, proc.pid) in messages.windows()
    stop_window(proc, name)
    assert messages.find_window(name) is None


def test_copy_data_carries_64_mib_through_shared_memory(spawn, name):
    proc = start_window(spawn, name)
    data = os.urandom(1 << 20) * 64
    length, tag, digest = messages.copy_data(name, data, tag=7, timeout=30)
    assert (length, tag, digest) == (len(data), 7, hashlib.sha256(data).hexdigest())
    small = messages.copy_data(name, b"hello", tag=-3)
    assert small == [5, -3, hashlib.sha256(b"hello").hexdigest()]
    with pytest.raises(interproc.PermissionDenied, match="must be sent"):
        messages.post_message(name, messages.WM_COPYDATA, 0, 0, data=b"x")
    stop_window(proc, name)


def test_a_handler_that_raises_gives_the_sender_remote_error(spawn, name):
    proc = start_window(spawn, name)
    with pytest.raises(interproc.RemoteError) as info:
        messages.send_message(name, BOOM)
    assert info.value.remote_type == "KeyError"
    assert "no such setting" in info.value.traceback_text
    assert messages.send_message(name, REPORT)["seen"] == []  # the window survived
    stop_window(proc, name)


def test_send_to_a_missing_or_dead_window_is_not_found_at_once(spawn, name):
    with pytest.raises(interproc.NotFound):
        messages.send_message(name, POST, timeout=None)  # nothing there: no wait even without a timeout
    proc = start_window(spawn, name)
    assert messages.send_message(name, REPORT)["seen"] == []
    threading.Timer(0.5, os.kill, (proc.pid, signal.SIGKILL)).start()
    with pytest.raises(interproc.NotFound):
        messages.send_message(name, SLOW, timeout=None)  # its owner dies while the handler runs
    proc.wait(timeout=10)
    with pytest.raises(interproc.NotFound):
        messages.post_message(name, POST, 1, 2)  # the stale socket file answers nobody
    assert messages.find_window(name) is None
    os.unlink(os.path.join(os.environ["INTERPROC_RUNTIME_DIR"], f"msgwin.{name}.sock"))


def test_full_queue_not_pumping_and_hung(spawn, name):
    proc = start_window(spawn, name, "idle")
    for i in range(50):
        messages.post_message(name, POST, i, 0)
    with pytest.raises(messages.QueueFull, match="full"):
        messages.post_message(name, POST, 50, 0)
    with pytest.raises(interproc.Timeout, match="did not answer"):
        messages.send_message(name, REPORT, timeout=0.3)
    time.sleep(0.6)  # the owner has now not pumped for longer than its hung limit
    with pytest.raises(interproc.Timeout, match="hung"):
        messages.send_message(name, REPORT, timeout=30, abort_if_hung=True)
    proc.stdin.close()
    proc.wait(timeout=10)


def test_register_message_agrees_across_five_concurrent_processes(spawn):
    texts = [f"App{i}.Event" for i in range(8)]
    code = """
import json, random, sys
from interproc import messages
texts = json.loads(sys.argv[1])
random.shuffle(texts)
print(json.dumps({t: messages.register_message(t) for t in texts}))
"""
    # new to the (persistent, session-wide) table, so the first registrations race
    texts = [f"{t}.{os.getpid()}.{time.monotonic_ns()}" for t in texts]
    procs = [spawn(code, json.dumps(texts)) for _ in range(5)]
    tables = []
    for p in procs:
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        tables.append(json.loads(out))
    assert all(t == tables[0] for t in tables)
    ids = list(tables[0].values())
    assert len(set(ids)) == 8 and all(0xC000 <= i <= 0xFFFF for i in ids)
    assert messages.register_message(texts[3].upper()) == tables[0][texts[3]]  # case-insensitive, as atoms
    with pytest.raises(ValueError):
        messages.register_message("two\nlines")


def test_broadcast_reaches_every_window_with_per_window_results(spawn, name_factory):
    a, b = name_factory(), name_factory()
    pa, pb = start_window(spawn, a), start_window(spawn, b)
    quiet = name_factory()
    pq = start_window(spawn, quiet, "idle")  # never pumps: its entry is a Timeout
    results = messages.broadcast_message(REPORT, timeout=1)
    assert results[a]["seen"] == [] and results[b]["seen"] == []
    assert isinstance(results[quiet], interproc.Timeout)
    stop_window(pa, a)
    stop_window(pb, b)
    pq.stdin.close()
    pq.wait(timeout=10)


ASYNC_CHILD = """
import asyncio, sys
from interproc import messages
async def main():
    async with messages.AsyncWindow(sys.argv[1]) as win:
        @win.handler(0x400)
        async def double(m):
            await asyncio.sleep(0)
            return m.wparam * 2
        @win.handler(messages.WM_COPYDATA)
        def size(m):
            return len(m.data)
        win.handler(0x404)(lambda m: win.quit())
        print("ready", flush=True)
        await win.run()
asyncio.run(main())
"""


def test_asyncio_window_and_async_senders(spawn, name):
    proc = spawn(ASYNC_CHILD, name)
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()

    async def main():
        assert await messages.asend_message(name, 0x400, 21) == 42
        await messages.apost_message(name, 0x400, 1)
        assert await messages.acopy_data(name, b"x" * (3 << 20)) == 3 << 20
        assert (await messages.abroadcast_message(0x400, 5))[name] == 10
        await messages.asend_message(name, QUIT)

    asyncio.run(main())
    proc.wait(timeout=10)


def test_window_core_rejects_garbage_and_orders_sends_first():
    core = WindowCore(max_queue=2)
    with pytest.raises(interproc.ProtocolError):
        core.receive(None, b"\x01\x00", 1, 1, 0.0)
    with pytest.raises(interproc.ProtocolError):
        core.receive(None, HEADER.pack(9, 0, 1, 1, 0, 0), 1, 1, 0.0)
    core.receive("a", b"".join(encode_request(2, 1, 5, 0, 0)), 1, 1, 0.0)
    assert core.receive("b", b"".join(encode_request(SEND, 2, 6, 0, 0, data=b"d")), 1, 1, 0.0) is None
    first = core.pop()
    assert first is not None and (first.msg, first.data) == (6, b"d")
    assert core.pop().msg == 5 and core.pop() is None


NOBODY = 65534
OTHER_USER = """
import os, socket, sys
from interproc import messages, dde
import interproc
name, path, dde_path = sys.argv[1], sys.argv[2], sys.argv[3]
out = []
out.append("windows:" + ",".join(n for n, _ in messages.windows()))
try:
    messages.send_message(name, 0x400, timeout=2)
    out.append("send:reached")
except interproc.NotFound:
    out.append("send:NotFound")
for p in (path, dde_path):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(p)
        out.append("raw:connected")
    except PermissionError:
        out.append("raw:EACCES")
    finally:
        s.close()
print(" ".join(out))
"""


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/usr/bin/python3"), reason="needs root to be another user")
def test_another_users_processes_cannot_see_or_reach_windows_or_services(spawn, name):
    import shutil
    import subprocess
    import sys
    import tempfile

    from interproc import dde

    probe = subprocess.run(["/usr/bin/python3", "-c", "import sys; print(sys.version_info[:2])"],
                           capture_output=True, text=True)
    if probe.stdout.strip() != str(tuple(sys.version_info[:2])):
        pytest.skip("the system python is not this python's version (the C extension would not load)")
    own = tempfile.mkdtemp(prefix="interproc-nobody-")  # a runtime dir of the other user's own
    os.chown(own, NOBODY, NOBODY)
    proc = start_window(spawn, name)
    try:
        with dde.Server(name):
            rt = os.environ["INTERPROC_RUNTIME_DIR"]
            env = dict(os.environ, INTERPROC_RUNTIME_DIR=str(own),
                       PYTHONPATH=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))

            def demote() -> None:
                os.setgid(NOBODY)
                os.setuid(NOBODY)

            reach = subprocess.run(["/usr/bin/python3", "-c", "import interproc"], capture_output=True, text=True,
                                   env=env, preexec_fn=demote, timeout=30, cwd="/")
            if reach.returncode != 0:  # e.g. the checkout lies under a 0700 directory
                pytest.skip(f"another user cannot import this checkout's interproc: {reach.stderr[-200:]}")
            other = subprocess.run(["/usr/bin/python3", "-c", OTHER_USER, name, os.path.join(rt, f"msgwin.{name}.sock"),
                                    os.path.join(rt, f"dde.{name}.sock")],
                                   capture_output=True, text=True, env=env, preexec_fn=demote, timeout=30, cwd="/")
            if "Permission denied" in other.stderr and "interproc" not in other.stderr:
                pytest.skip(f"nobody cannot run python here: {other.stderr[-200:]}")
            assert other.returncode == 0, other.stderr
            assert other.stdout.split() == ["windows:", "send:NotFound", "raw:EACCES", "raw:EACCES"]
    finally:
        stop_window(proc, name)
        shutil.rmtree(own, ignore_errors=True)


def test_window_over_tcp_with_authkey(spawn, name):
    code = """
import sys
from interproc import messages
win = messages.Window(sys.argv[1], host="tcp://127.0.0.1:0", authkey=b"k")
win.handler(messages.WM_COPYDATA)(lambda m: [len(m.data), m.sender_pid])
win.handler(0x404)(lambda m: win.quit())
print(win.address, flush=True)
win.run()
win.close()
"""
    proc = spawn(code, name)
    address = proc.stdout.readline().strip()
    assert address.startswith("tcp://127.0.0.1:")
    length, pid = messages.copy_data(name, b"z" * (1 << 20), host=address, authkey=b"k", timeout=10)
    assert length == 1 << 20 and pid == 0  # no SO_PEERCRED over TCP: the pid is unknown
    with pytest.raises(interproc.PermissionDenied):
        messages.send_message(name, 0x404, host=address, authkey=b"wrong", timeout=10)
    messages.send_message(name, 0x404, host=address, authkey=b"k", timeout=10)
    proc.wait(timeout=10)


def test_asyncio_window_over_tcp(spawn, name):
    code = """
import asyncio, sys
from interproc import messages
async def main():
    async with messages.AsyncWindow(sys.argv[1], host="tcp://127.0.0.1:0", authkey=b"k") as win:
        win.handler(0x400)(lambda m: m.wparam + 1)
        win.handler(0x404)(lambda m: win.quit())
        print(win.address, flush=True)
        await win.run()
asyncio.run(main())
"""
    proc = spawn(code, name)
    address = proc.stdout.readline().strip()
    assert address.startswith("tcp://"), proc.stderr.read()

    async def main():
        assert await messages.asend_message(name, 0x400, 41, host=address, authkey=b"k") == 42
        assert await messages.acopy_data(name, b"q" * 300_000, host=address, authkey=b"k") == 0  # unhandled: 0
        await messages.apost_message(name, 0x404, host=address, authkey=b"k")

    asyncio.run(main())
    proc.wait(timeout=10)
