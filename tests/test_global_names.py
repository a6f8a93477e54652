"""Global named pipes against another local user (uid 65534, run by the root test).

The global directory is made per test (``INTERPROC_GLOBAL_DIR``) so tests
can give it to another owner without touching the machine's real one.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

import interproc
from conftest import wait_for_line
from interproc import sockets
from interproc.pipes import NamedPipe
from transport_helpers import accept_and_connect

pytestmark = pytest.mark.skipif(os.getuid() != 0, reason="needs root to run a second uid")
OTHER = 65534

# import everything first: the interpreter and the checkout may live where uid 65534 cannot read
AS_OTHER = f"import os, sys, socket, interproc\nfrom interproc import sockets\nfrom interproc.pipes import NamedPipe\nos.setgid({OTHER}); os.setuid({OTHER})\n"


@pytest.fixture
def global_dir(monkeypatch):
    base = tempfile.mkdtemp(prefix="ipg-", dir="/tmp")
    os.chmod(base, 0o1777)  # like /tmp
    path = os.path.join(base, "g")
    monkeypatch.setenv("INTERPROC_GLOBAL_DIR", path)
    yield path
    shutil.rmtree(base, ignore_errors=True)


def test_a_global_dir_created_by_another_user_is_refused(global_dir, spawn, name):
    # The attack: an ordinary user creates the shared directory first; as its
    # owner it may unlink anyone's socket in it (the sticky bit does not stop
    # the owner) and bind its own under the same name.
    spawn.run(AS_OTHER + "os.mkdir(sys.argv[1], 0o1777); os.chmod(sys.argv[1], 0o1777)\n", global_dir)
    assert os.stat(global_dir).st_uid == OTHER
    with pytest.raises(interproc.PermissionDenied, match=f"belongs to uid {OTHER}"):
        NamedPipe.serve(name, scope="global", file_mode=0o666)
    with pytest.raises(interproc.PermissionDenied, match=f"belongs to uid {OTHER}"):
        NamedPipe.connect(name, scope="global", timeout=1)
    # a non-sticky directory is refused as well, even root's own
    shutil.rmtree(global_dir)
    os.mkdir(global_dir, 0o777)
    os.chmod(global_dir, 0o777)
    with pytest.raises(interproc.PermissionDenied, match="sticky"):
        NamedPipe.serve(name, scope="global", file_mode=0o666)


def test_a_live_global_server_cannot_be_replaced_by_another_uid(global_dir, spawn, name):
    srv = NamedPipe.serve(name, scope="global", file_mode=0o666)
    try:
        assert os.stat(global_dir).st_uid == 0 and os.stat(global_dir).st_mode & 0o1000
        out = spawn.run(AS_OTHER + """
name, path = sys.argv[1], sys.argv[2]
try:
    NamedPipe.serve(name, scope="global", file_mode=0o666)
except interproc.AlreadyExists:
    print("SERVE refused")
for attempt in ("unlink", "rename"):
    try:
        if attempt == "unlink":
            os.unlink(path)
        else:
            s = socket.socket(socket.AF_UNIX); s.bind(path + ".mine"); os.rename(path + ".mine", path)
        print(attempt.upper(), "succeeded")
    except PermissionError:
        print(attempt.upper(), "refused")
""", name, srv.path)
        assert "SERVE refused" in out and "UNLINK refused" in out and "RENAME refused" in out, out
        for leftover in os.listdir(global_dir):
            if leftover.endswith(".mine"):
                os.unlink(os.path.join(global_dir, leftover))
        ch, peer = accept_and_connect(srv, lambda: NamedPipe.connect(name, scope="global", server_uid=0, timeout=5))
        with ch, peer:
            assert ch.peer_credentials.uid == 0 and peer.peer_credentials.pid == os.getpid()
    finally:
        srv.close()


def test_clients_can_require_the_server_uid(global_dir, spawn, name):
    # the global directory belongs to root; another uid serves a name in it
    NamedPipe.list()  # noqa: B018 - nothing; make sure listing copes with the empty dir
    os.mkdir(global_dir, 0o1777)
    os.chmod(global_dir, 0o1777)
    unix_path = os.path.join(global_dir, "sock")
    proc = spawn(AS_OTHER + """
srv = NamedPipe.serve(sys.argv[1], scope="global", file_mode=0o666)
lst = sockets.listen_unix(sys.argv[2], mode=0o666)
print("READY", flush=True)
for listener in (srv, lst):
    try:
        with listener.accept(timeout=20) as ch:
            ch.send(b"from the other uid")
    except interproc.InterprocError as exc:
        print("ERR", exc, flush=True)
sys.stdin.read()
srv.close(); lst.close()
""", name, unix_path, stdin=__import__("subprocess").PIPE)
    wait_for_line(proc, "READY")
    with pytest.raises(interproc.PermissionDenied, match=f"uid {OTHER}, not by the required uid 0"):
        NamedPipe.connect(name, scope="global", server_uid=0, timeout=5)
    with pytest.raises(interproc.PermissionDenied, match=f"uid {OTHER}"):
        interproc.connect(f"unix://{unix_path}?server_uid=0", timeout=5)
    import asyncio

    from interproc import aio

    async def refused():  # the asyncio clients check it the same way
        with pytest.raises(interproc.PermissionDenied, match=f"uid {OTHER}, not by the required uid 0"):
            await aio.NamedPipe.connect(name, scope="global", server_uid=0, timeout=5)
        with pytest.raises(interproc.PermissionDenied, match=f"uid {OTHER}"):
            await aio.connect(f"unix://{unix_path}?server_uid=0", timeout=5)

    asyncio.run(refused())
    with NamedPipe.connect(name, scope="global", server_uid=OTHER, timeout=5) as ch:
        assert ch.recv(timeout=10) == b"from the other uid"
    with sockets.connect_unix(unix_path, server_uid=OTHER, timeout=5) as ch:
        assert ch.recv(timeout=10) == b"from the other uid"
    proc.stdin.close()
    proc.wait(10)


def test_another_uid_cannot_squat_a_user_scope_pipe_token(spawn, name):
    # The token of a user-scope pipe is an abstract socket, which any uid may
    # bind; its name mixes in a key from the private runtime dir, so the
    # public hash of the path (all another user can compute) is not it.
    from interproc._pipes._core import _KEY_FILE, lock_name as _lock_name, pipe_path as _pipe_path
    from interproc._naming import runtime_dir

    attacker = spawn(AS_OTHER + """
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("\\0" + sys.argv[1])
key = os.path.join(sys.argv[2], sys.argv[3])
try:
    open(key, "rb").read()
    print("BOUND key readable", flush=True)
except PermissionError:
    print("BOUND key private", flush=True)
import time; time.sleep(30)
""", _lock_name(_pipe_path(name, "user")), runtime_dir("user"), _KEY_FILE)
    try:
        assert wait_for_line(attacker, "BOUND") == "BOUND key private"
        srv = NamedPipe.serve(name)  # AlreadyExists before: the token was taken
        try:
            ch, peer = accept_and_connect(srv, lambda: NamedPipe.connect(name, timeout=5))
            with ch, peer:
                ch.send(b"mine")
                assert peer.recv(timeout=5) == b"mine"
            with pytest.raises(interproc.AlreadyExists):
                NamedPipe.serve(name)  # the real first-instance rule still holds
            assert [p.state for p in NamedPipe.list() if p.name == name] == ["alive"]
        finally:
            srv.close()
    finally:
        attacker.kill()
        attacker.wait(10)


@pytest.mark.parametrize("bad", ["0", -1, True, 1.5])
def test_server_uid_must_be_a_uid(bad, name):
    import asyncio

    from interproc import aio

    # refused before anything is looked up (nobody serves this name)
    with pytest.raises(ValueError, match="server_uid must be a uid"):
        NamedPipe.connect(name, server_uid=bad)
    with pytest.raises(ValueError, match="server_uid must be a uid"):
        sockets.connect_unix(f"/nonexistent/{name}.sock", server_uid=bad)

    async def main():
        with pytest.raises(ValueError, match="server_uid must be a uid"):
            await aio.NamedPipe.connect(name, server_uid=bad)

    asyncio.run(main())
