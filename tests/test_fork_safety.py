"""Handles belong to the process that made them: a forked child that exits
(finalizers run) or closes what it inherited leaves its parent's channels,
listeners and names alone.  Each case runs in its own process, which forks."""

from __future__ import annotations

import pytest

SCENARIO = r"""
import gc, os, sys, threading, interproc
from concurrent.futures import ThreadPoolExecutor
from interproc.pipes import NamedPipe
kind, how, name, tmp = sys.argv[1:5]

def pair(listener, connect):
    with ThreadPoolExecutor(1) as ex:
        fut = ex.submit(listener.accept, timeout=10)
        client = connect()
        return client, fut.result(timeout=10)

if kind == "shm":
    lst = interproc.listen(f"shm://{name}")
    addr = lst.address
elif kind == "tcp":
    lst = interproc.listen("tcp://127.0.0.1:0")
    addr = lst.address
elif kind == "unix":
    lst = interproc.listen(f"unix://{tmp}/s")
    addr = lst.address
else:
    lst = NamedPipe.serve(name)
    addr = f"pipe://{name}"
client, server = pair(lst, lambda: interproc.connect(addr, timeout=10))
path = getattr(lst, "path", None) or getattr(lst, "_path", None)

pid = os.fork()
if pid == 0:
    if how == "close":
        client.close(); server.close(); lst.close()
    sys.exit(0)  # atexit: weakref finalizers of every inherited handle run
_, status = os.waitpid(pid, 0)
assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status

# the parent's objects are untouched
client.send(b"ping"); assert server.recv(timeout=5) == b"ping"
server.send(b"pong"); assert client.recv(timeout=5) == b"pong"
if path:
    assert os.path.exists(path), f"the child removed {path}"
c2, s2 = pair(lst, lambda: interproc.connect(addr, timeout=10))
c2.send(b"again"); assert s2.recv(timeout=5) == b"again"
for o in (c2, s2, client, server, lst):
    o.close()
if path:
    assert not os.path.exists(path)
print("OK", flush=True)
"""


@pytest.mark.parametrize("how", ["exit", "close"])
@pytest.mark.parametrize("kind", ["shm", "tcp", "unix", "pipe"])
def test_forked_child_leaves_parent_handles_alone(kind, how, spawn, name):
    import shutil

    from transport_helpers import short_tmpdir

    tmp = short_tmpdir()
    try:
        out = spawn.run(SCENARIO, kind, how, name, tmp, timeout=40)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert out.strip() == "OK"


LOCK_HELD_AT_FORK = r"""
import os, sys, threading, time, interproc
lst = interproc.listen("tcp://127.0.0.1:0")
box = {}
t = threading.Thread(target=lambda: box.setdefault("s", lst.accept(timeout=10)))
t.start()
client = interproc.connect(lst.address, timeout=10)
t.join()
server = box["s"]
got = []
reader = threading.Thread(target=lambda: got.append(server.recv()))  # waits, holding the recv lock
reader.start()
time.sleep(0.3)
pid = os.fork()
if pid == 0:
    # The reader thread does not exist here; its lock must not either.
    try:
        server.recv(timeout=0.3)
        code = 3  # nothing was sent: cannot happen
    except interproc.Timeout as exc:
        code = 4 if "another thread" in str(exc) else 0
    os._exit(code)
_, status = os.waitpid(pid, 0)
client.send(b"wake")
reader.join(10)
assert got == [b"wake"], got
print("CHILD", os.WEXITSTATUS(status), flush=True)
for o in (client, server, lst):
    o.close()
"""


def test_a_lock_held_by_a_parent_thread_at_fork_is_free_in_the_child(spawn):
    # Without fresh locks after fork the child's send waits for a thread that
    # only exists in the parent (exit code 4: "another thread's call").
    out = spawn.run(LOCK_HELD_AT_FORK, timeout=50)
    assert out.strip() == "CHILD 0"
