"""Plain JSON-RPC 2.0 (jsonrpc+tcp://, jsonrpc+unix://) against clients nobody here wrote.

The server runs in its own process.  The specification's section 7 examples
are sent as raw text and the answers compared structurally (batch answers in
any order; error objects by code, message and id — ``data`` is optional).
Other clients: the ``jsonrpcclient`` package from PyPI, and ``socat``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

import interproc
from interproc import rpc

sys.path.insert(0, os.path.dirname(__file__))
from conftest import wait_for_line  # noqa: E402
from transport_helpers import short_tmpdir  # noqa: E402

SERVER = r"""
import sys
from interproc import rpc

class Spec:
    # the methods the examples of JSON-RPC 2.0 section 7 call
    def subtract(self, minuend, subtrahend):
        return minuend - subtrahend
    def sum(self, *numbers):
        return sum(numbers)
    def update(self, *values):
        pass
    def notify_hello(self, *values):
        pass
    def get_data(self):
        return ["hello", 5]
    def echo(self, value):
        return value

srv = rpc.Server(Spec(), sys.argv[1])
print("ADDRESS", srv.address, flush=True)
srv.serve_forever()
"""

# (request text, expected answer or None for "nothing at all") — JSON-RPC 2.0 section 7
EXAMPLES = [
    ('{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}',
     {"jsonrpc": "2.0", "result": 19, "id": 1}),
    ('{"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}',
     {"jsonrpc": "2.0", "result": -19, "id": 2}),
    ('{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}',
     {"jsonrpc": "2.0", "result": 19, "id": 3}),
    ('{"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42, "subtrahend": 23}, "id": 4}',
     {"jsonrpc": "2.0", "result": 19, "id": 4}),
    ('{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}', None),
    ('{"jsonrpc": "2.0", "method": "foobar"}', None),
    ('{"jsonrpc": "2.0", "method": "foobar", "id": "1"}',
     {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "1"}),
    ('{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]',
     {"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": None}),
    ('{"jsonrpc": "2.0", "method": 1, "params": "bar"}',
     {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None}),
    ('[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"}, {"jsonrpc": "2.0", "method"]',
     {"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": None}),
    ("[]", {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None}),
    ("[1]", [{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None}]),
    ("[1,2,3]", [{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None}] * 3),
    ('[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},'
     ' {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},'
     ' {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},'
     ' {"foo": "boo"},'
     ' {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},'
     ' {"jsonrpc": "2.0", "method": "get_data", "id": "9"}]',
     [{"jsonrpc": "2.0", "result": 7, "id": "1"},
      {"jsonrpc": "2.0", "result": 19, "id": "2"},
      {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None},
      {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "5"},
      {"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"}]),
    ('[{"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]}, {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}]',
     None),
]


def _normal(answer):
    """Error objects compared by code and message (``data`` is optional); batches in any order."""
    if isinstance(answer, list):
        return sorted((json.dumps(_normal(a), sort_keys=True) for a in answer))
    if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
        answer = dict(answer, error={k: answer["error"][k] for k in ("code", "message")})
    return answer


@pytest.fixture(params=["tcp", "unix"])
def plain_server(request, spawn):
    address = "jsonrpc+tcp://127.0.0.1:0" if request.param == "tcp" else f"jsonrpc+unix://{short_tmpdir()}/j.sock"
    proc = spawn(SERVER, address)
    yield wait_for_line(proc, "ADDRESS").split()[1]
    proc.kill()
    proc.wait(10)


def _socket(address: str) -> socket.socket:
    rest = address.split("://", 1)[1]
    if address.startswith("jsonrpc+tcp"):
        host, port = rest.rsplit(":", 1)
        return socket.create_connection((host, int(port)), timeout=10)
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(rest)
    return s


def test_specification_examples_as_raw_text(plain_server):
    with _socket(plain_server) as s:
        f = s.makefile("rwb")
        for text, expected in EXAMPLES:
            f.write(text.encode() + b"\n")
            # a marker call after each example: the next line must be the example's
            # answer, or (for "nothing at all") the marker's own answer
            f.write(b'{"jsonrpc": "2.0", "method": "echo", "params": ["marker"], "id": "m"}\n')
            f.flush()
            first = json.loads(f.readline())
            if expected is None:
                assert first == {"jsonrpc": "2.0", "result": "marker", "id": "m"}, text
                continue
            assert _normal(first) == _normal(expected), text
            assert json.loads(f.readline()) == {"jsonrpc": "2.0", "result": "marker", "id": "m"}


@pytest.mark.parametrize("rid", ["abc", 7, -1, 2.5, None])
def test_ids_are_echoed(plain_server, rid):
    with _socket(plain_server) as s:
        f = s.makefile("rwb")
        f.write(json.dumps({"jsonrpc": "2.0", "method": "echo", "params": [1], "id": rid}).encode() + b"\n")
        f.flush()
        assert json.loads(f.readline()) == {"jsonrpc": "2.0", "result": 1, "id": rid}


def test_invalid_params_by_arity_and_name(plain_server):
    with _socket(plain_server) as s:
        f = s.makefile("rwb")
        for params in ([1], [1, 2, 3], {"minuend": 1, "nope": 2}):
            f.write(json.dumps({"jsonrpc": "2.0", "method": "subtract", "params": params, "id": 1}).encode() + b"\n")
            f.flush()
            assert json.loads(f.readline())["error"]["code"] == -32602


def test_jsonrpcclient_package(plain_server):
    jsonrpcclient = pytest.importorskip("jsonrpcclient", reason="pip install jsonrpcclient")
    with _socket(plain_server) as s:
        f = s.makefile("rwb")

        def send(text: str):
            f.write(text.encode() + b"\n")
            f.flush()
            return jsonrpcclient.parse_json(f.readline().decode())

        ok = send(jsonrpcclient.request_json("subtract", params=(42, 23)))
        assert isinstance(ok, jsonrpcclient.Ok) and ok.result == 19
        ok = send(jsonrpcclient.request_json("subtract", params={"minuend": 5, "subtrahend": 7}))
        assert ok.result == -2
        err = send(jsonrpcclient.request_json("__class__"))
        assert isinstance(err, jsonrpcclient.Error) and err.code == -32601


@pytest.mark.skipif(shutil.which("socat") is None, reason="socat is not installed (apt-get install socat)")
def test_socat(plain_server):
    rest = plain_server.split("://", 1)[1]
    target = f"TCP:{rest}" if plain_server.startswith("jsonrpc+tcp") else f"UNIX-CONNECT:{rest}"
    out = subprocess.run(["socat", "-t", "5", "-", target], timeout=20, capture_output=True,
                         input=b'{"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":1}\n'
                               b'{"jsonrpc":"2.0","method":"update","params":[1]}\n'
                               b'{"jsonrpc":"2.0","method":"get_data","id":2}\n')
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert lines == [{"jsonrpc": "2.0", "result": 19, "id": 1}, {"jsonrpc": "2.0", "result": ["hello", 5], "id": 2}]


def test_interproc_proxy_speaks_it_too(plain_server):
    with rpc.connect(plain_server, timeout=10) as p:
        assert p.codec == "json"
        assert p.subtract(42, 23) == 19
        assert p.sum(1, 2, 3) == 6
        with pytest.raises(interproc.RemoteError) as info:
            p.nothing()
        assert info.value.remote_type == "MethodNotFound"


def test_plain_json_rpc_beyond_loopback_needs_tls():
    with pytest.raises(interproc.PermissionDenied, match="loopback"):
        rpc.Server(object(), "jsonrpc+tcp://0.0.0.0:0")


def test_plain_json_rpc_over_tls(spawn, tmp_path):
    import ssl

    from transport_helpers import make_tls_contexts

    if make_tls_contexts(str(tmp_path)) is None:
        pytest.skip("openssl is not installed")
    code = SERVER.replace('srv = rpc.Server(Spec(), sys.argv[1])', '''import ssl
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
srv = rpc.Server(Spec(), sys.argv[1], ssl=ctx)''')
    proc = spawn(code, "jsonrpc+tcp://127.0.0.1:0", str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    address = wait_for_line(proc, "ADDRESS").split()[1]
    host, port = address.removeprefix("jsonrpc+tcp://").rsplit(":", 1)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(tmp_path / "cert.pem"))
    # a silent client that never handshakes does not hold up the others
    idle = socket.create_connection((host, int(port)), timeout=10)
    try:
        with ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=10), server_hostname="localhost") as s:
            f = s.makefile("rwb")
            f.write(b'{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}\n')
            f.flush()
            assert json.loads(f.readline()) == {"jsonrpc": "2.0", "result": 19, "id": 1}
        with rpc.connect(address, timeout=10, ssl=ctx, server_hostname="localhost") as p:
            assert p.get_data() == ["hello", 5]
    finally:
        idle.close()
    proc.kill()
    proc.wait(10)


def test_tracebacks_can_be_kept_home():
    class Boom:
        def boom(self):
            raise ValueError("secret detail in a traceback")

    with rpc.Server(Boom(), "jsonrpc+tcp://127.0.0.1:0", tracebacks=False).start() as srv:
        with rpc.connect(srv.address, timeout=10) as p:
            with pytest.raises(interproc.RemoteError) as info:
                p.boom()
    assert info.value.remote_type == "ValueError" and info.value.traceback_text == ""
