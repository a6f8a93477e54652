"""interproc.rpc across real processes: one call battery over every transport.

A server process exposes ``Calc``; client processes hammer it
(RPC_CLIENTS x RPC_CALLS, 8 x 200 by default so each transport stays a few
seconds on a small machine; ``INTERPROC_RPC_STRESS=1`` runs the issue's
32 x 1,000), and the test process itself checks a batch, a notification, a
remote exception, replies out of order on one connection, a timed-out call
whose late reply is discarded, and a server SIGKILLed mid-call.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest

import interproc
from interproc import rpc

sys.path.insert(0, os.path.dirname(__file__))
from conftest import wait_for_line  # noqa: E402
from transport_helpers import make_tls_contexts, short_tmpdir  # noqa: E402

STRESS = os.environ.get("INTERPROC_RPC_STRESS") == "1"
CLIENTS, CALLS = (32, 1000) if STRESS else (8, 200)

SERVER = r"""
import os, ssl, sys, time
from interproc import rpc

class Calc:
    def __init__(self):
        self._notes = []
    def add(self, a, b):
        return a + b
    def subtract(self, minuend, subtrahend):
        return minuend - subtrahend
    def lookup(self, key):
        return {"a": 1}[key]
    def sleep(self, seconds):
        time.sleep(seconds)
        return seconds
    def note(self, text):
        self._notes.append(text)
    def notes(self):
        return self._notes
    def pid(self):
        return os.getpid()

address, kind = sys.argv[1], sys.argv[2]
options = {}
if kind == "authkey":
    options["authkey"] = b"secret"
elif kind == "tls":
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[3], sys.argv[4])
    options["ssl"] = ctx
srv = rpc.Server(Calc(), address, **options)
print("ADDRESS", srv.address, flush=True)
srv.serve_forever()
"""

CLIENT = r"""
import ssl, sys
from interproc import rpc
address, kind, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
options = {}
if kind == "authkey":
    options["authkey"] = b"secret"
elif kind == "tls":
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(sys.argv[4])
    options["ssl"] = ctx
with rpc.connect(address, timeout=30, **options) as p:
    base = int(sys.argv[5])
    for i in range(calls):
        assert p.add(base, i) == base + i
    print("OK", calls, p.codec, flush=True)
"""


@pytest.fixture
def transport(request, name, spawn):
    """(address to serve, client options, client argv extras, server kind, tls paths)."""
    kind = request.param
    tls_files: list[str] = []
    cable = None
    if kind == "shm":
        address = f"shm://{name}"
    elif kind == "pipe":
        address = f"pipe://{name}"
    elif kind == "unix":
        address = f"unix://{short_tmpdir()}/rpc.sock"
    elif kind in ("tcp-authkey", "tcp-tls"):
        address = "tcp://127.0.0.1:0"
    elif kind == "nats":  # the same battery through a real nats-server (issue 14)
        pytest.importorskip("nats")
        from nats_server import NatsServer

        cable = NatsServer()
        address = f"{cable.url}/calc-{name}"
    elif kind == "serial":
        from interproc import serial

        cable = serial.pty_pair()
        address = f"serial://{cable.a}"
    mode = {"tcp-authkey": "authkey", "tcp-tls": "tls"}.get(kind, "plain")
    client_opts: dict = {}
    if mode == "authkey":
        client_opts["authkey"] = b"secret"
    elif mode == "tls":
        d = short_tmpdir()
        if make_tls_contexts(d) is None:
            pytest.skip("openssl is not installed")
        tls_files = [os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")]
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(tls_files[0])
        client_opts["ssl"] = ctx
    srv = spawn(SERVER, address, mode, *tls_files)
    served = wait_for_line(srv, "ADDRESS").split()[1]
    client_address = f"serial://{cable.b}" if cable is not None and kind == "serial" else served
    if kind == "nats":  # the server subscribes in serve_forever(), just after printing its address
        deadline = time.monotonic() + 15
        while True:
            try:
                rpc.connect(served, timeout=5).close()
                break
            except interproc.NotFound:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    try:
        yield kind, srv, client_address, client_opts, mode, tls_files
    finally:
        srv.kill()
        srv.wait(10)
        if kind in ("shm", "pipe"):  # what `interproc gc` does: a dead server's names go
            from interproc import _registry

            deadline = time.monotonic() + 5
            while True:
                _registry.collect()
                left = [f for d in ("/dev/shm", os.environ["INTERPROC_RUNTIME_DIR"]) for f in os.listdir(d)
                        if name in f]
                if not left or time.monotonic() > deadline:
                    break
                time.sleep(0.1)  # our own side's handles may still be closing
        if kind == "nats":
            from interproc import _nats

            _nats.close_all()
        if cable is not None:
            cable.close()


ALL = ["shm", "pipe", "unix", "tcp-authkey", "tcp-tls", "serial", "nats"]


@pytest.mark.timeout(300 if STRESS else 90)
@pytest.mark.parametrize("transport", ALL, indirect=True)
def test_call_battery(transport, spawn):
    kind, srv, address, opts, mode, tls_files = transport
    with rpc.connect(address, timeout=20, **opts) as p:
        # the basic calls, positional and named
        assert p.add(1, 2) == 3
        assert p.call("add", 1, 2, timeout=5) == 3
        assert p.subtract(subtrahend=23, minuend=42) == 19
        assert p.codec in ("msgpack", "json")

        # many client processes at once (a serial line carries one connection)
        if kind != "serial":
            clients = [spawn(CLIENT, address, mode, str(CALLS), tls_files[0] if tls_files else "-", str(1000 * i))
                       for i in range(CLIENTS)]
            for c in clients:
                out, err = c.communicate(timeout=240 if STRESS else 60)
                assert c.returncode == 0, err
                assert out.startswith(f"OK {CALLS}")

        # a batch: several calls, one message each way
        with p.batch() as b:
            f1 = b.add(1, 2)
            f2 = b.subtract(minuend=10, subtrahend=4)
            f3 = b.lookup("missing")
            b.notify("note", "from a batch")
        assert (f1.result(), f2.result()) == (3, 6)
        with pytest.raises(interproc.RemoteError) as info:
            f3.result()
        assert info.value.remote_type == "KeyError"

        # a notification: no reply, but it runs
        p.notify("note", "hello")
        deadline = time.monotonic() + 10
        while "hello" not in p.notes() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "hello" in p.notes() and "from a batch" in p.notes()

        # a remote exception, with its type and traceback; the server goes on
        with pytest.raises(interproc.RemoteError) as info:
            p.lookup("nope")
        assert info.value.remote_type == "KeyError"
        assert "lookup" in info.value.traceback_text
        assert p.add(2, 2) == 4

        # replies out of order on one connection: a slow call does not hold up a quick one
        slow = p.submit("sleep", 1.0)
        assert p.add(5, 5) == 10
        assert not slow.done()
        assert slow.result(timeout=20) == 1.0

        # a call that times out; its late reply is discarded
        with pytest.raises(interproc.Timeout):
            p.call("sleep", 0.5, timeout=0.05)
        time.sleep(0.6)
        assert p.add(3, 4) == 7

        # the server dies mid-call: ChannelClosed at once, not a Timeout after 20 s
        if kind == "nats":  # the broker does not tell a caller its server died: the call runs out
            pending = p.submit("sleep", 30)  # its time, and then nobody serves the name
            time.sleep(0.2)
            os.kill(srv.pid, signal.SIGKILL)
            with pytest.raises(interproc.Timeout):
                pending.result(timeout=1)
            with pytest.raises(interproc.RemoteError) as info:  # the broker's "no responders"
                p.add(1, 1)
            assert info.value.remote_type == "NotFound"
        elif kind != "serial":  # a serial line has no end of file to see a dead peer by
            pending = p.submit("sleep", 30)
            time.sleep(0.2)
            os.kill(srv.pid, signal.SIGKILL)
            with pytest.raises(interproc.ChannelClosed):
                pending.result(timeout=20)
            with pytest.raises(interproc.ChannelClosed):
                p.add(1, 1)


@pytest.mark.parametrize("transport", ["unix"], indirect=True)
def test_many_threads_share_one_connection(transport):
    kind, srv, address, opts, mode, _ = transport
    errors: list[BaseException] = []
    with rpc.connect(address, timeout=20, **opts) as p:
        def work(base: int) -> None:
            try:
                for i in range(100):
                    assert p.add(base, i) == base + i
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(1000 * t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert not errors


@pytest.mark.parametrize("transport", ["tcp-authkey"], indirect=True)
def test_cancel_discards_the_late_reply(transport):
    kind, srv, address, opts, mode, _ = transport
    with rpc.connect(address, timeout=20, **opts) as p:
        pending = p.submit("sleep", 0.3)
        assert pending.cancel()
        with pytest.raises(interproc.HandleClosed):
            pending.result()
        time.sleep(0.5)
        assert p.add(1, 1) == 2  # the cancelled call's reply came and went unseen


@pytest.mark.parametrize("transport", ["shm"], indirect=True)
def test_json_codec_can_be_forced(transport):
    kind, srv, address, opts, mode, _ = transport
    with rpc.connect(address, timeout=20, codec="json") as p:
        assert p.codec == "json"
        assert p.add([1], [2]) == [1, 2]


@pytest.mark.parametrize("transport", ["unix"], indirect=True)
def test_junk_from_a_peer_gets_error_answers_and_the_server_goes_on(transport):
    import json as _json

    kind, srv, address, opts, mode, _ = transport
    with interproc.connect(address, timeout=10) as raw:
        for junk, code in [(b"not json at all", -32700), (b"\xc1\xc1", -32700), (b"[]", -32600),
                           (b'{"jsonrpc": "2.0", "method": 7, "id": 1}', -32600),
                           (b'{"jsonrpc": "2.0", "method": "__class__", "id": 2}', -32601),
                           (b'{"jsonrpc": "2.0", "method": "add", "params": [1], "id": 3}', -32602)]:
            raw.send(junk)
            answer = _json.loads(raw.recv(timeout=10))
            assert answer["error"]["code"] == code, junk
        raw.send(b'{"jsonrpc": "2.0", "method": "add", "params": [40, 2], "id": "x"}')
        assert _json.loads(raw.recv(timeout=10)) == {"jsonrpc": "2.0", "result": 42, "id": "x"}
    with rpc.connect(address, timeout=10) as p:  # and other clients are served as before
        assert p.add(1, 2) == 3


@pytest.mark.parametrize("transport", ["unix", "shm"], indirect=True)
def test_large_arguments_from_many_threads_do_not_deadlock(transport):
    kind, srv, address, opts, mode, _ = transport
    errors: list[BaseException] = []
    with rpc.connect(address, timeout=30, **opts) as p:
        assert p.codec == "msgpack"  # bytes travel as they are

        def work(t: int) -> None:
            try:
                for i in range(5):
                    a, b = bytes([t]) * 200_000, bytes([i]) * 200_000
                    assert p.add(a, b) == a + b
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert not errors


@pytest.mark.parametrize("transport", ["pipe"], indirect=True)
def test_own_close_is_handle_closed(transport):
    kind, srv, address, opts, mode, _ = transport
    p = rpc.connect(address, timeout=20, **opts)
    waiting = p.submit("sleep", 5)
    threading.Timer(0.2, p.close).start()
    with pytest.raises(interproc.HandleClosed):
        waiting.result()
    with pytest.raises(interproc.HandleClosed):
        p.add(1, 2)
    assert p.closed


@pytest.mark.parametrize("transport", ["unix"], indirect=True)
def test_rpyc_style_escapes_over_the_wire(transport):
    """The known escapes (CVE-2019-16328 and kin: dunder names, attribute walks,
    private names), sent by a real client to a real server in both codecs: each is
    "Method not found", and the server goes on."""
    from test_rpc_protocol import ESCAPES

    kind, srv, address, opts, mode, _ = transport
    for codec in ("msgpack", "json"):
        with rpc.connect(address, timeout=10, codec=codec) as p:
            for name in ESCAPES + ["pid.__globals__", "__init__.__globals__.os.system", "rpc.hello.__class__"]:
                with pytest.raises(interproc.RemoteError) as info:
                    p.call(name)
                assert info.value.remote_type == "MethodNotFound", name
            assert p.add(1, 2) == 3
