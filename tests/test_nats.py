"""nats:// -- mailslots and RPC on a real nats-server, across real processes (issue 14)."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("nats")

from conftest import wait_for_line  # noqa: E402
from nats_server import NatsServer, nats_server  # noqa: E402,F401  (the fixture)

from interproc import _nats, rpc  # noqa: E402
from interproc._errors import ChannelClosed, MessageTooLarge, NotFound, PermissionDenied, RemoteError, Timeout  # noqa: E402
from interproc.mailslot import Mailslot  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_connections():
    # Each test has its own nats-server: drop this process's shared connections after it.
    yield
    _nats.close_all()


READER = """
import sys
from interproc.mailslot import Mailslot
from interproc._errors import Timeout
url, name, group, want = sys.argv[1], sys.argv[2], sys.argv[3] or None, int(sys.argv[4])
slot = Mailslot.create(name, scope=url, queue_group=group)
print("READY", flush=True)
got = []
try:
    while len(got) < want:
        got.append(slot.read(timeout=3).decode())
except Timeout:
    pass
print("GOT", ",".join(got), flush=True)
slot.close()
"""


def _got(proc) -> list[str]:
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    line = [x for x in out.splitlines() if x.startswith("GOT")][0]
    return [x for x in line[4:].split(",") if x]


# -- mailslots ---------------------------------------------------------------------
def test_every_reader_process_gets_every_message_in_order(nats_server, spawn, name):
    readers = [spawn(READER, nats_server.url, name, "", "20") for _ in range(3)]
    for r in readers:
        wait_for_line(r, "READY")
    for i in range(20):
        Mailslot.write(name, f"m{i}".encode(), scope=nats_server.url)
    for r in readers:
        assert _got(r) == [f"m{i}" for i in range(20)]


def test_a_queue_group_delivers_each_message_exactly_once(nats_server, spawn, name):
    readers = [spawn(READER, nats_server.url, name, "workers", "60") for _ in range(3)]
    for r in readers:
        wait_for_line(r, "READY")
    for i in range(60):
        Mailslot.write(name, f"m{i}".encode(), scope=nats_server.url)
    got = [_got(r) for r in readers]
    everything = [m for g in got for m in g]
    assert sorted(everything) == sorted(f"m{i}" for i in range(60))  # none lost, none twice
    for g in got:  # each member still sees its share in the writer's order
        assert g == sorted(g, key=lambda m: int(m[1:]))


def test_order_is_kept_per_writer_process(nats_server, spawn, name):
    slot = Mailslot.create(name, scope=nats_server.url)
    code = """
import sys
from interproc.mailslot import Mailslot
for i in range(100):
    Mailslot.write(sys.argv[2], f"{sys.argv[3]}{i}".encode(), scope=sys.argv[1])
"""
    writers = [spawn(code, nats_server.url, name, tag) for tag in "ab"]
    got = [slot.read(timeout=10).decode() for _ in range(200)]
    for w in writers:
        assert w.wait(10) == 0
    for tag in "ab":
        assert [int(m[1:]) for m in got if m[0] == tag] == list(range(100))
    slot.close()


def test_a_message_up_to_max_payload_goes_through_and_beyond_is_too_large(tmp_path, name):
    conf = tmp_path / "nats.conf"
    conf.write_text("max_payload: 65536\n")
    server = NatsServer(extra=["-c", str(conf)])
    try:
        slot = Mailslot.create(name, scope=server.url, max_message_size=1 << 20)
        big = bytes(range(256)) * 256  # exactly 65536
        Mailslot.write(name, big, scope=server.url)
        assert slot.read(timeout=5) == big
        with pytest.raises(MessageTooLarge, match="max_payload"):
            Mailslot.write(name, big + b"x", scope=server.url)
        slot.close()
    finally:
        _nats.close_all()
        server.close()


def test_user_password_and_token_authentication(name):
    server = NatsServer(extra=["--user", "alice", "--pass", "s3cret"])
    try:
        host = server.url.removeprefix("nats://")
        with pytest.raises(PermissionDenied):
            Mailslot.write(name, b"x", scope=f"nats://alice:wrong@{host}", timeout=5)
        url = f"nats://alice:s3cret@{host}"
        slot = Mailslot.create(name, scope=url)
        assert "s3cret" not in repr(slot)
        Mailslot.write(name, b"hello", scope=url)
        assert slot.read(timeout=5) == b"hello"
        slot.close()
    finally:
        _nats.close_all()
        server.close()
    server = NatsServer(extra=["--auth", "tok3n"])
    try:
        with pytest.raises(PermissionDenied):
            Mailslot.write(name, b"x", scope=server.url, timeout=5)
        slot = Mailslot.create(name, scope=server.url, token="tok3n")
        Mailslot.write(name, b"hi", scope=server.url, token="tok3n")
        assert slot.read(timeout=5) == b"hi"
        slot.close()
    finally:
        _nats.close_all()
        server.close()


def test_names_cannot_inject_subject_tokens_or_wildcards(nats_server):
    assert _nats.subject("mailslot", "a.b") == "interproc.mailslot.a%2Eb"
    for bad in ("a*", "a>", "a b", ">", "a.*"):
        with pytest.raises(ValueError):
            Mailslot.create(bad, scope=nats_server.url)
        with pytest.raises(ValueError):
            Mailslot.write(bad, b"x", scope=nats_server.url)
    with pytest.raises(ValueError, match="queue_group"):
        Mailslot.create("ok", scope=nats_server.url, queue_group="g.*")
    with pytest.raises(ValueError, match="server only"):
        Mailslot.create("ok", scope=nats_server.url + "/path")
    # "a.b" and "a%2Eb"-lookalikes do not meet: only valid names exist, and '%' is not one
    slot = Mailslot.create("a.b", scope=nats_server.url)
    Mailslot.write("a.c", b"other", scope=nats_server.url)
    Mailslot.write("a.b", b"mine", scope=nats_server.url)
    assert slot.read(timeout=5) == b"mine"
    with pytest.raises(Timeout):
        slot.read(timeout=0.3)
    slot.close()


def test_a_reader_process_resumes_after_the_nats_server_restarts(nats_server, spawn, name):
    code = """
import sys
from interproc.mailslot import Mailslot
slot = Mailslot.create(sys.argv[2], scope=sys.argv[1])
print("READY", flush=True)
while True:
    m = slot.read(timeout=20).decode()
    print("GOT", m, flush=True)
    if m.startswith("after"):
        break
slot.close()
"""
    reader = spawn(code, nats_server.url, name)
    wait_for_line(reader, "READY")
    Mailslot.write(name, b"before", scope=nats_server.url)
    wait_for_line(reader, "GOT before")
    nats_server.restart(down_for=0.5)
    deadline = time.monotonic() + 20
    i = 0
    while reader.poll() is None and time.monotonic() < deadline:
        # The reader re-subscribes on reconnect; until then messages have no subscriber.
        Mailslot.write(name, f"after{i}".encode(), scope=nats_server.url, timeout=5)
        i += 1
        time.sleep(0.1)
    out, err = reader.communicate(timeout=10)
    assert reader.returncode == 0, err
    assert "GOT after" in out


# -- RPC -------------------------------------------------------------------------------
SERVER = """
import os, sys, time
from interproc import rpc
class Calc:
    def __init__(self): self.n = 0
    def add(self, a, b): return a + b
    def who(self): return os.getpid()
    def boom(self): raise KeyError("no such key")
    def slow(self, t): time.sleep(t); return t
    def incr(self):
        self.n += 1
        return self.n
    def _secret(self): return "hidden"
srv = rpc.Server(Calc(), sys.argv[1]).start()
print("READY", os.getpid(), flush=True)
sys.stdin.read()
srv.close()
"""


def _servers(spawn, address: str, n: int) -> list:
    import subprocess

    procs = [spawn(SERVER, address, stdin=subprocess.PIPE) for _ in range(n)]
    for p in procs:
        wait_for_line(p, "READY")
    return procs


def test_server_processes_in_a_queue_group_share_the_calls(nats_server, spawn):
    address = nats_server.url + "/calc"
    procs = _servers(spawn, address, 3)
    with rpc.connect(address, timeout=5) as p:
        assert [p.add(i, 1) for i in range(60)] == [i + 1 for i in range(60)]
        pids = {p.who() for _ in range(60)}
    assert pids <= {pr.pid for pr in procs} and len(pids) >= 2


def test_remote_exception_private_method_timeout_and_no_server(nats_server, spawn):
    address = nats_server.url + "/calc"
    with pytest.raises(NotFound, match="no server"):
        rpc.connect(address, timeout=5)
    _servers(spawn, address, 1)
    with rpc.connect(address, timeout=5) as p:
        with pytest.raises(RemoteError) as info:
            p.boom()
        assert info.value.remote_type == "KeyError" and "no such key" in str(info.value)
        with pytest.raises(RemoteError) as info:
            p.call("_secret")
        assert info.value.remote_type == "MethodNotFound"
        with pytest.raises(Timeout):
            p.call("slow", 3, timeout=0.3)
        assert p.add(2, 3) == 5  # the late answer of slow() is not taken for this one
    with pytest.raises(ValueError, match="no service"):
        rpc.connect(nats_server.url, timeout=5)


def test_calls_resume_after_a_nats_server_restart_without_lost_or_doubled_replies(nats_server, spawn):
    address = nats_server.url + "/calc"
    _servers(spawn, address, 1)
    acked: list[int] = []
    failed = 0
    with rpc.connect(address, timeout=2) as p:
        for _ in range(20):
            acked.append(p.incr())
        nats_server.stop()
        with pytest.raises((RemoteError, Timeout, ChannelClosed)) as info:
            p.incr()
        failed += 1
        assert "NATS" in str(info.value) or isinstance(info.value, Timeout)
        nats_server.start()
        deadline = time.monotonic() + 20
        while len(acked) < 40 and time.monotonic() < deadline:
            try:
                acked.append(p.incr())
            except (RemoteError, Timeout) as exc:  # until both ends have reconnected
                assert not isinstance(exc, RemoteError) or exc.remote_type in ("ChannelClosed", "NotFound")
                failed += 1
                time.sleep(0.1)
        assert len(acked) == 40
    # Every acknowledged reply came once, in order; only failed calls may have left gaps.
    assert acked == sorted(set(acked))
    assert acked[-1] - len(acked) <= failed


def test_tls_with_a_certificate_the_client_trusts(tmp_path, name):
    import shutil
    import ssl
    import subprocess

    if not shutil.which("openssl"):
        pytest.skip("needs openssl to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    server = NatsServer(extra=["--tls", "--tlscert", str(cert), "--tlskey", str(key)])
    try:
        with pytest.raises((NotFound, PermissionDenied, Timeout)):
            Mailslot.write(name, b"x", scope=server.url, timeout=5)  # the server insists on TLS
        ctx = ssl.create_default_context(cafile=str(cert))
        slot = Mailslot.create(name, scope=server.url, tls=ctx)
        Mailslot.write(name, b"secret", scope=server.url, tls=ctx)
        assert slot.read(timeout=5) == b"secret"
        slot.close()
    finally:
        _nats.close_all()
        server.close()


def test_batch_and_notification_over_nats(nats_server, spawn):
    address = nats_server.url + "/calc"
    _servers(spawn, address, 2)
    with rpc.connect(address, timeout=5) as p:
        with p.batch() as b:
            futures = [b.add(i, i) for i in range(10)]
        assert [f.result() for f in futures] == [2 * i for i in range(10)]
        p.notify("incr")  # no answer comes back, and none is waited for
        assert p.add(1, 1) == 2


def test_a_missing_nats_py_names_the_extra(spawn):
    code = """
import sys
sys.modules["nats"] = None  # as if nats-py were not installed
from interproc.mailslot import Mailslot
from interproc import dde, messages, rpc
for attempt in (lambda: Mailslot.write("x", b"y", scope="nats://127.0.0.1:4222"),
                lambda: Mailslot.create("x", scope="nats://127.0.0.1:4222"),
                lambda: rpc.connect("nats://127.0.0.1:4222/calc"),
                lambda: dde.connect("x", "t", host="nats://127.0.0.1:4222"),
                lambda: dde.Server("x", host="nats://127.0.0.1:4222"),
                lambda: messages.send_message("x", 0x401, host="nats://127.0.0.1:4222"),
                lambda: messages.Window("x", host="nats://127.0.0.1:4222")):
    try:
        attempt()
    except ImportError as exc:
        print("IMPORTERROR", exc)
"""
    out = spawn.run(code)
    lines = [x for x in out.splitlines() if x.startswith("IMPORTERROR")]
    assert len(lines) == 7 and all("pip install 'interproc[nats]'" in x for x in lines)


def test_asyncio_proxy_over_nats(nats_server, spawn):
    import asyncio

    from interproc.rpc import aio as rpc_aio

    address = nats_server.url + "/calc"

    async def main() -> None:
        with pytest.raises(NotFound):
            await rpc_aio.connect(address, timeout=5)
        await asyncio.to_thread(_servers, spawn, address, 2)
        p = await rpc_aio.connect(address, timeout=5)
        try:
            assert await asyncio.gather(*(p.add(i, 1) for i in range(30))) == [i + 1 for i in range(30)]
            with pytest.raises(RemoteError) as info:
                await p.boom()
            assert info.value.remote_type == "KeyError"
            with pytest.raises(Timeout):
                await p.call("slow", 3, timeout=0.3)
        finally:
            await p.close()

    asyncio.run(main())


def test_nkeys_authentication(tmp_path, name):
    nkeys = pytest.importorskip("nkeys", reason="nkeys needs pip install 'nats-py[nkeys]'")
    import os

    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    conf = tmp_path / "nats.conf"
    conf.write_text(f'authorization {{ users = [ {{ nkey: "{public}" }} ] }}\n')
    seed_file = tmp_path / "user.nk"
    seed_file.write_bytes(seed)
    seed_file.chmod(0o600)
    server = NatsServer(extra=["-c", str(conf)])
    try:
        with pytest.raises(PermissionDenied):
            Mailslot.write(name, b"x", scope=server.url, timeout=5)
        slot = Mailslot.create(name, scope=server.url, nkeys_seed=str(seed_file))
        Mailslot.write(name, b"signed in", scope=server.url, nkeys_seed=str(seed_file))
        assert slot.read(timeout=5) == b"signed in"
        slot.close()
    finally:
        _nats.close_all()
        server.close()
