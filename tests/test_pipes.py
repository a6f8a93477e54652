"""interproc.pipes across real processes: anonymous pipes, named pipes, FIFOs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

import interproc
from conftest import SRC, wait_for_line
from interproc import _registry
from interproc._naming import object_path
from interproc.pipes import Fifo, NamedPipe, pipe, pipe_from_env, popen_with_pipe
from transport_helpers import accept_and_connect

CHILD_ENV = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))

# A named-pipe echo server: one thread per client, prints READY once listening.
ECHO_SERVER = """
import sys, threading
from interproc.pipes import NamedPipe
name, mode, max_instances = sys.argv[1], sys.argv[2], int(sys.argv[3])
srv = NamedPipe.serve(name, mode=mode, max_instances=max_instances)
print("READY", flush=True)
def serve(ch):
    with ch:
        for msg in ch:
            ch.send(msg)
while True:
    ch = srv.accept()
    threading.Thread(target=serve, args=(ch,), daemon=True).start()
"""


def _stop(proc):
    proc.kill()
    proc.wait(10)


# -- anonymous pipes ------------------------------------------------------------------

def test_pipe_to_child_and_back():
    """The classic pattern: the parent hands one end to a child through pass_fds + an env var."""
    code = (
        "from interproc.pipes import pipe_from_env\n"
        "r = pipe_from_env()\n"
        "msgs = list(r)\n"
        "print(len(msgs), sum(map(len, msgs)), msgs[0].decode(), flush=True)\n"
    )
    proc, w = popen_with_pipe([sys.executable, "-c", code], child="read", stdout=subprocess.PIPE, text=True,
                              env=CHILD_ENV)
    with w:
        for i in range(100):
            w.send(f"message {i}".encode() * (i + 1))
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert out.split() == ["100", str(sum(len(f"message {i}") * (i + 1) for i in range(100))), "message", "0"]


def test_pipe_from_child_sees_eof_when_child_exits():
    code = (
        "from interproc.pipes import pipe_from_env\n"
        "w = pipe_from_env()\n"
        "w.write(b'raw bytes ' * 1000)\n"
    )
    proc, r = popen_with_pipe([sys.executable, "-c", code], child="write", env=CHILD_ENV)
    with r:
        data = b"".join(iter(lambda: r.read(4096, timeout=20), b""))
    assert proc.wait(20) == 0
    assert data == b"raw bytes " * 1000


def test_writer_gets_channel_closed_when_reader_process_dies():
    proc, w = popen_with_pipe([sys.executable, "-c", "import time; time.sleep(60)"], child="read", env=CHILD_ENV)
    try:
        w.send(b"buffered while the reader lives")
        proc.kill()
        proc.wait(10)
        with pytest.raises(interproc.ChannelClosed):
            for _ in range(100):
                w.send(b"x" * 4096, timeout=5)
    finally:
        w.close()


def test_pipe_from_env_errors(monkeypatch):
    monkeypatch.delenv("INTERPROC_PIPE", raising=False)
    with pytest.raises(interproc.NotFound, match="INTERPROC_PIPE"):
        pipe_from_env()
    monkeypatch.setenv("INTERPROC_PIPE", "banana")
    with pytest.raises(ValueError, match="FD:read"):
        pipe_from_env()


def test_pipe_ends_are_one_way():
    r, w = pipe()
    with r, w:
        # halves of the contract, with no method that only refuses
        assert isinstance(r, interproc.ReceiveChannel) and not isinstance(r, interproc.SendChannel)
        assert isinstance(w, interproc.SendChannel) and not isinstance(w, interproc.ReceiveChannel)
        assert not hasattr(r, "send") and not hasattr(r, "write")
        assert not hasattr(w, "recv") and not hasattr(w, "read") and not hasattr(w, "__iter__")
        assert r.fileno() != w.fileno()
    with pytest.raises(interproc.HandleClosed):
        r.recv(timeout=0)
    with pytest.raises(interproc.HandleClosed):
        w.send(b"x")


def test_recv_timeout_is_interruptible_and_exact():
    r, w = pipe()
    with r, w:
        t0 = time.monotonic()
        with pytest.raises(interproc.Timeout):
            r.recv(timeout=0.2)
        assert time.monotonic() - t0 >= 0.19


# -- named pipes ------------------------------------------------------------------------

def _kill_server(proc, name):
    """SIGKILL leaves the socket file behind (stale), as a crash would: remove it."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)
    try:
        os.unlink(object_path("pipe", name))
    except FileNotFoundError:
        pass


@pytest.fixture
def echo_server(spawn, name_factory):
    started = []

    def start(mode="message", max_instances=255):
        name = name_factory()
        proc = spawn(ECHO_SERVER, name, mode, str(max_instances))
        started.append((proc, name))
        wait_for_line(proc, "READY")
        return name, proc

    yield start
    for proc, name in started:
        _kill_server(proc, name)


@pytest.mark.parametrize("size", [0, 1, 64 * 1024, 16 * 1024 * 1024])
def test_named_pipe_message_sizes_across_processes(echo_server, size):
    name, _ = echo_server()
    payload = os.urandom(size)
    with NamedPipe.connect(name, timeout=10) as ch:
        assert ch.mode == "message"
        ch.send(payload)
        assert ch.recv(timeout=30) == payload
        ch.send(b"after")
        assert ch.recv(timeout=10) == b"after"


def test_named_pipe_peer_credentials(name, spawn):
    srv = NamedPipe.serve(name)
    with srv:
        proc = spawn(
            "from interproc.pipes import NamedPipe; import sys\n"
            "ch = NamedPipe.connect(sys.argv[1], timeout=10)\n"
            "ch.send(b'hi'); print(ch.peer_credentials.pid, flush=True); ch.recv(timeout=10)\n",
            name,
        )
        with srv.accept(timeout=10) as peer:
            assert peer.recv(timeout=10) == b"hi"
            creds = peer.peer_credentials
            assert (creds.pid, creds.uid, creds.gid) == (proc.pid, os.getuid(), os.getgid())
            peer.send(b"bye")
            out, err = proc.communicate(timeout=10)
        assert int(out) == os.getpid(), err  # and the client sees the server's pid


def test_byte_mode_is_a_stream_across_processes(echo_server):
    name, _ = echo_server(mode="byte")
    with NamedPipe.connect(name, timeout=10) as ch:
        assert ch.mode == "byte"
        for chunk in (b"ab", b"cd", b"ef"):
            ch.write(chunk)
        got = b""
        while len(got) < 6:
            got += ch.recv(timeout=10)  # byte mode: boundaries are not kept
        assert got == b"abcdef"


def test_max_instances_makes_clients_wait(echo_server):
    name, _ = echo_server(max_instances=2)
    a = NamedPipe.connect(name, timeout=10)
    b = NamedPipe.connect(name, timeout=10)
    try:
        t0 = time.monotonic()
        with pytest.raises(interproc.Timeout, match="no free instance"):
            NamedPipe.connect(name, timeout=0.5)
        assert time.monotonic() - t0 >= 0.45
        a.close()  # frees an instance: the next client gets it
        with NamedPipe.connect(name, timeout=10) as c:
            c.send(b"third")
            assert c.recv(timeout=10) == b"third"
        b.send(b"still served")
        assert b.recv(timeout=10) == b"still served"
    finally:
        a.close()
        b.close()


def test_server_accept_waits_for_a_free_instance(name):
    with NamedPipe.serve(name, max_instances=1) as srv:
        c1, p1 = accept_and_connect(srv, lambda: NamedPipe.connect(name, timeout=10))
        with c1, p1:
            assert srv.instances == 1
            with pytest.raises(interproc.Timeout, match="all 1 instances"):
                srv.accept(timeout=0.2)
        assert srv.instances == 0


def test_connect_not_found_at_once_unless_timeout(name, spawn):
    t0 = time.monotonic()
    with pytest.raises(interproc.NotFound):
        NamedPipe.connect(name)
    assert time.monotonic() - t0 < 5  # it did not wait (without timeout= it would wait forever)
    # With timeout=, the client waits for a server that starts later.
    proc = spawn(
        "import sys, time\nfrom interproc.pipes import NamedPipe\n"
        "time.sleep(0.5)\nsrv = NamedPipe.serve(sys.argv[1])\n"
        "ch = srv.accept(timeout=10); ch.send(ch.recv(timeout=10)); srv.close()\n",
        name,
    )
    with NamedPipe.connect(name, timeout=15) as ch:
        ch.send(b"late server")
        assert ch.recv(timeout=10) == b"late server"
    proc.wait(10)


def test_first_instance_guard_and_stale_socket(name, spawn):
    proc = spawn(ECHO_SERVER, name, "message", "4")
    wait_for_line(proc, "READY")
    with pytest.raises(interproc.AlreadyExists, match="already being served"):
        NamedPipe.serve(name)
    [info] = [o for o in NamedPipe.list() if o.name == name]
    assert (info.state, info.owner_pid, info.mode) == ("alive", proc.pid, 0o600)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    [info] = [o for o in NamedPipe.list() if o.name == name]
    assert info.state == "stale" and info.owner_pid is None
    with pytest.raises(interproc.NotFound):
        NamedPipe.connect(name)
    # gc removes the stale socket; a new server could also simply take the name over.
    removed = _registry.collect()
    assert name in [o.name for o in removed]
    assert not [o for o in NamedPipe.list() if o.name == name]
    with NamedPipe.serve(name) as srv:
        assert [o.state for o in NamedPipe.list() if o.name == name] == ["alive"]
        assert srv.address == f"pipe://{name}"


def test_new_server_replaces_a_stale_socket(name, spawn):
    proc = spawn(ECHO_SERVER, name, "message", "4")
    wait_for_line(proc, "READY")
    proc.kill()
    proc.wait(10)
    assert os.path.exists(object_path("pipe", name))
    with NamedPipe.serve(name) as srv:
        c, p = accept_and_connect(srv, lambda: NamedPipe.connect(name, timeout=10))
        with c, p:
            c.send(b"ok")
            assert p.recv(timeout=10) == b"ok"


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to run a client as another uid")
def test_user_scope_pipe_refuses_other_uids(name, spawn):
    """Even a client of another uid that reaches the socket is refused (SO_PEERCRED check)."""
    srv = NamedPipe.serve(name)
    public = tempfile.mkdtemp(prefix="ipt-", dir="/tmp")
    try:
        os.chmod(public, 0o755)
        link = os.path.join(public, "sock")
        os.link(srv.path, link)  # a second name for the same socket, outside the 0700 dir
        os.chmod(link, 0o666)
        proc = spawn(
            # import first: the interpreter itself may live where uid 65534 cannot read
            "import os, sys, interproc\nfrom interproc.pipes import NamedPipe\n"
            "from interproc._pipes import _named as _namedpipe\n"
            "os.setgid(65534); os.setuid(65534)\n"
            "_namedpipe._pipe_path = lambda name, scope: sys.argv[1]\n"
            "try:\n    NamedPipe.connect('x', timeout=10, scope='global')\n"
            "except interproc.PermissionDenied as e:\n    print('DENIED', e, flush=True)\n",
            link,
        )
        with pytest.raises(interproc.PermissionDenied, match="uid 65534"):
            srv.accept(timeout=10)
        out, err = proc.communicate(timeout=10)
        assert out.startswith("DENIED") and "uid 65534" in out, err
        assert srv.instances == 0
    finally:
        srv.close()
        shutil.rmtree(public, ignore_errors=True)


def test_bad_names_and_options(name):
    with pytest.raises(ValueError, match="character"):
        NamedPipe.serve("bad/name")
    with pytest.raises(ValueError, match="mode"):
        NamedPipe.serve(name, mode="datagram")
    with pytest.raises(ValueError, match="max_instances"):
        NamedPipe.serve(name, max_instances=0)
    with pytest.raises(ValueError, match="107 bytes"):
        NamedPipe.serve("x" * 128)
    with pytest.raises(ValueError, match="global"):
        NamedPipe.serve(name, file_mode=0o666)


def test_pipe_address_scheme(name):
    with interproc.listen(f"pipe://{name}?max_instances=3&codec=msgpack") as srv:
        assert srv.max_instances == 3 and srv.address == f"pipe://{name}"
        c, p = accept_and_connect(srv, lambda: interproc.connect(srv.address, timeout=10, codec="msgpack"))
        with c, p:
            c.send_obj({"via": "address"})
            assert p.recv_obj(timeout=10) == {"via": "address"}
    with pytest.raises(ValueError, match="unknown option"):
        interproc.connect(f"pipe://{name}?colour=red")


# -- FIFOs -----------------------------------------------------------------------------

def test_fifo_interops_with_shell_tools(name):
    fifo = Fifo.create(name)
    try:
        assert os.stat(fifo.path).st_mode & 0o777 == 0o600
        with pytest.raises(interproc.AlreadyExists):
            Fifo.create(name)
        with pytest.raises(interproc.Timeout, match="no reader"):
            fifo.writer(timeout=0.1)
        r = Fifo.open(name).reader()
        with r:
            sh = subprocess.Popen(["sh", "-c", f'printf "from the shell" > "{fifo.path}"'])
            data = b"".join(iter(lambda: r.read(100, timeout=10), b""))
            assert sh.wait(10) == 0
        assert data == b"from the shell"
        cat = subprocess.Popen(["cat", fifo.path], stdout=subprocess.PIPE)
        with fifo.writer(timeout=10) as w:
            w.write(b"to the shell")
        assert cat.communicate(timeout=10)[0] == b"to the shell"
    finally:
        fifo.unlink()


def test_global_scope_pipe_needs_a_mode_and_works(name, spawn):
    with pytest.raises(ValueError, match="explicit mode"):
        NamedPipe.serve(name, scope="global")
    with NamedPipe.serve(name, scope="global", file_mode=0o660, allowed_uids=[os.getuid()]) as srv:
        assert srv.path.startswith("/tmp/interproc-global/")
        assert os.stat(srv.path).st_mode & 0o777 == 0o660
        assert [o.scope for o in NamedPipe.list() if o.name == name] == ["global"]
        proc = spawn(
            "import sys\nfrom interproc.pipes import NamedPipe\n"
            "with NamedPipe.connect(sys.argv[1], scope='global', timeout=10) as ch:\n"
            "    ch.send(b'global hello')\n",
            name,
        )
        with srv.accept(timeout=10) as peer:
            assert peer.recv(timeout=10) == b"global hello"
        proc.wait(10)
    assert not os.path.exists(srv.path)


@pytest.mark.parametrize("kind", ["pipe", "named-pipe"])
def test_blocking_recv_is_interrupted_by_ctrl_c(spawn, name, kind):
    """recv() without a timeout sleeps in the kernel, yet SIGINT still raises KeyboardInterrupt."""
    setup = {
        "pipe": "from interproc.pipes import pipe\nr, w = pipe()\nch = r\n",
        "named-pipe": (
            "import threading, sys\nfrom interproc.pipes import NamedPipe\n"
            "srv = NamedPipe.serve(sys.argv[1])\n"
            "t = threading.Thread(target=lambda: NamedPipe.connect(sys.argv[1], timeout=10).recv(timeout=30), daemon=True)\n"
            "t.start()\nch = srv.accept(timeout=10)\nsrv.close()\n"
        ),
    }[kind]
    proc = spawn(setup + "try:\n    print('READY', flush=True)\n    ch.recv()\nexcept KeyboardInterrupt:\n"
                 "    print('INTERRUPTED', flush=True)\n", name)
    wait_for_line(proc, "READY")
    for _ in range(200):  # wait until the child sleeps (in recv) before interrupting it
        with open(f"/proc/{proc.pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "S":
                break
        time.sleep(0.01)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert "INTERRUPTED" in out, err
