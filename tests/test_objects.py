"""interproc.objects across real processes: a server process, this process (and
client processes) as clients, over unix://, tcp:// (authkey) and shm://.

The server process writes a line to a file whenever an object's ``__del__``
runs, so releases (close, garbage collection, a killed client, a client that
stopped pinging) are seen from outside.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time
import typing

import pytest

import interproc
from interproc import HandleClosed, RemoteError, objects

sys.path.insert(0, os.path.dirname(__file__))
from conftest import wait_for_line  # noqa: E402
from transport_helpers import make_tls_contexts, short_tmpdir  # noqa: E402

SERVER = r"""
import sys, typing
from interproc import objects

address, kind, log = sys.argv[1], sys.argv[2], sys.argv[3]

class IShape(typing.Protocol):
    def area(self) -> float: ...

class Circle:
    def __init__(self, radius, tag="c"):
        self._radius = radius
        self.tag = tag
    @property
    def radius(self):
        return self._radius
    @radius.setter
    def radius(self, value):
        if value < 0:
            raise ValueError("negative radius")
        self._radius = value
    def area(self):
        return 3.0 * self._radius ** 2
    def grown(self, tag):
        return Circle(self._radius * 2, tag)
    def same(self, other):
        return other is self
    def visit(self, visitor, n):
        return [visitor.seen(self._radius * i) for i in range(n)]
    def me(self):
        return self
    def sleep(self, seconds):
        import time
        time.sleep(seconds)
        return seconds
    def lookup(self, key):
        return {"a": 1}[key]
    def __del__(self):
        with open(log, "a") as f:
            f.write(self.tag + "\n")

opts = {"authkey": b"secret"} if kind == "authkey" else {}
if kind == "tls":
    import ssl
    opts["ssl"] = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    opts["ssl"].load_cert_chain(sys.argv[4], sys.argv[5])
srv = objects.Server(address, ping_interval=0.2, missed_pings=3, **opts)
srv.register("Shapes.Circle", Circle, interfaces=[IShape])
srv.start()
print("ADDRESS", srv.address, flush=True)
for line in sys.stdin:
    if line.strip() == "live":
        print("LIVE", srv.live, flush=True)
    else:
        break
srv.close()
print("CLOSED", flush=True)
"""

CLIENT = r"""
import os, sys, time
from interproc import objects
address, kind, tag = sys.argv[1], sys.argv[2], sys.argv[3]
opts = {"authkey": b"secret"} if kind == "authkey" else {}
c = objects.create("Shapes.Circle", address, 1.0, tag, **opts)
assert c.area() == 3.0
print("HOLDING", os.getpid(), flush=True)
time.sleep(60)
"""


class IShape(typing.Protocol):
    def area(self) -> float: ...


class IOther(typing.Protocol):
    def paint(self) -> None: ...


class Visitor:
    def __init__(self) -> None:
        self.got: list[float] = []

    def seen(self, value: float) -> str:
        self.got.append(value)
        return f"saw {value}"


def _deleted(log: str) -> list[str]:
    try:
        with open(log) as f:
            return f.read().split()
    except FileNotFoundError:
        return []


def _wait_deleted(log: str, tag: str, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gc.collect()
        if tag in _deleted(log):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(params=["unix", "tcp-authkey", "shm"])
def server(request, name, spawn, tmp_path):
    kind = request.param
    address = {"unix": f"unix://{short_tmpdir()}/objects.sock", "tcp-authkey": "tcp://127.0.0.1:0",
               "shm": f"shm://{name}"}[kind]
    mode = "authkey" if kind == "tcp-authkey" else "plain"
    log = str(tmp_path / "deleted.log")
    proc = spawn(SERVER, address, mode, log, stdin=subprocess.PIPE)
    served = wait_for_line(proc, "ADDRESS").split()[1]
    opts = {"authkey": b"secret"} if mode == "authkey" else {}
    conn = objects.connect(served, timeout=10, **opts)
    try:
        yield conn, served, mode, log, proc
    finally:
        conn.close()
        try:
            proc.stdin.write("quit\n")
            proc.stdin.flush()
        except OSError:
            pass
        proc.wait(10)
        from interproc._objects import _listing

        _listing._collect()  # a killed server's `interproc ls` record, as `interproc gc` would
        if kind == "shm":  # what `interproc gc` does: the names of a killed client go
            from interproc import _registry

            deadline = time.monotonic() + 5
            while True:
                _registry.collect()
                left = [f for f in os.listdir("/dev/shm") if name in f]
                if not left or time.monotonic() > deadline:
                    break
                time.sleep(0.1)


def _live(proc) -> int:
    proc.stdin.write("live\n")
    proc.stdin.flush()
    return int(wait_for_line(proc, "LIVE").split()[1])


def test_create_methods_properties(server):
    conn, *_ = server
    c = conn.create("Shapes.Circle", 2.0)
    assert isinstance(c, objects.ObjectProxy)
    assert c.area() == 12.0
    assert c.radius == 2.0
    c.radius = 3.0
    assert c.radius == 3.0 and c.area() == 27.0
    assert c.tag == "c"  # a public instance attribute
    c.tag = "renamed"
    assert c.tag == "renamed"
    with pytest.raises(AttributeError):
        c.missing
    with pytest.raises(AttributeError):
        c.missing = 1  # no new attributes from outside
    with pytest.raises(RemoteError) as info:
        c.radius = -1.0
    assert info.value.remote_type == "ValueError" and "negative radius" in info.value.message
    with pytest.raises(RemoteError) as info:
        c.lookup("b")
    assert info.value.remote_type == "KeyError" and "Traceback" in info.value.traceback_text
    assert c.area() == 27.0  # the server lives on
    listed = conn.classes()
    assert listed[0]["progid"] == "Shapes.Circle" and listed[0]["live"] >= 1
    c.close()


def test_private_names_unreachable(server):
    conn, *_ = server
    c = conn.create("Shapes.Circle", 1.0)
    with pytest.raises(AttributeError):
        c._radius
    assert type(c) is objects.ObjectProxy  # c.__class__ is the local proxy class, never the remote one
    for name in ("__class__", "_radius", "__init__", "area.__globals__", "__del__"):
        with pytest.raises(RemoteError) as info:
            c.call(name)
        assert info.value.remote_type == "MethodNotFound"
    with pytest.raises(RemoteError):
        conn._session.call("obj.get", c._oid, "__dict__")
    with pytest.raises(RemoteError):  # an object this connection holds no reference to
        conn._session.call("obj.call", 987654, "area", [], {})
    with pytest.raises(RemoteError) as info:
        conn.create("Shapes.Nothing")
    assert info.value.remote_type == "NotFound"
    c.close()


def test_query_interface(server):
    conn, *_ = server
    c = conn.create("Shapes.Circle", 1.0)
    shape = c.query_interface(IShape)
    assert shape.area() == 3.0
    with pytest.raises(AttributeError):
        shape.grown  # not part of IShape
    with pytest.raises(TypeError):
        shape.area(1)  # checked against IShape's signature before sending
    assert c.query_interface("Circle") is not None
    with pytest.raises(objects.NoInterface):
        c.query_interface(IOther)
    c.close()


def test_by_reference_and_identity(server):
    conn, _, _, log, _ = server
    c = conn.create("Shapes.Circle", 1.0)
    g = c.grown("grown")
    assert isinstance(g, objects.ObjectProxy) and g.radius == 2.0
    assert c.same(c) is True  # a proxy passed back arrives as the original object
    assert c.same(g) is False and g.same(g) is True
    assert c.grown("x") is not c.grown("y")
    g2 = c.grown("z")
    assert g2.same(g2)
    c.close(), g.close(), g2.close()


def test_callback_into_the_client(server):
    conn, *_ = server
    c = conn.create("Shapes.Circle", 2.0)
    v = Visitor()
    assert c.visit(v, 3) == ["saw 0.0", "saw 2.0", "saw 4.0"]
    assert v.got == [0.0, 2.0, 4.0]
    c.close()


def test_release_on_close_and_gc(server):
    conn, _, _, log, proc = server
    a = conn.create("Shapes.Circle", 1.0, "closed")
    b = conn.create("Shapes.Circle", 1.0, "collected")
    assert _live(proc) == 2
    a.close()
    assert _wait_deleted(log, "closed")
    with pytest.raises(HandleClosed):
        a.area()
    assert "collected" not in _deleted(log)
    twin = b.grown("twin")
    del b  # garbage collected: its reference goes back; twin is another object
    assert _wait_deleted(log, "collected")
    assert "twin" not in _deleted(log)
    del twin
    assert _wait_deleted(log, "twin")
    assert _live(proc) == 0


def test_same_object_twice_is_one_proxy(server):
    """The same remote object received twice is the same proxy, holding both references."""
    conn, _, _, log, proc = server
    c = conn.create("Shapes.Circle", 1.0, "shared")
    assert c.me() is c
    assert c._box[0] == 2
    del c
    assert _wait_deleted(log, "shared")  # one release returned both references


def test_client_killed_releases_its_objects(server, spawn):
    conn, address, mode, log, proc = server
    child = spawn(CLIENT, address, mode, "killed")
    pid = int(wait_for_line(child, "HOLDING").split()[1])
    assert _live(proc) == 1
    os.kill(pid, signal.SIGKILL)
    child.wait(10)
    assert _wait_deleted(log, "killed")
    assert _live(proc) == 0


def test_client_that_stops_pinging_loses_its_objects(server, spawn):
    """A stopped client keeps its connection open but stops pinging: after
    ping_interval * missed_pings (0.6 s here) the server releases its objects."""
    conn, address, mode, log, proc = server
    child = spawn(CLIENT, address, mode, "stopped")
    pid = int(wait_for_line(child, "HOLDING").split()[1])
    os.kill(pid, signal.SIGSTOP)
    try:
        assert _wait_deleted(log, "stopped")
        assert child.poll() is None  # still there, connection open: the lease released it
    finally:
        os.kill(pid, signal.SIGKILL)
        os.kill(pid, signal.SIGCONT)
        child.wait(10)
    # meanwhile our own connection, which pings, kept its objects
    c = conn.create("Shapes.Circle", 1.0, "mine")
    time.sleep(1.0)
    assert c.area() == 3.0
    c.close()


def test_shared_connection_create(server):
    _, address, mode, log, proc = server
    opts = {"authkey": b"secret"} if mode == "authkey" else {}
    a = objects.create("Shapes.Circle", address, 1.0, "first", **opts)
    b = objects.create("Shapes.Circle", address, 2.0, tag="second", **opts)
    assert a.same(a) and not a.same(b)  # one connection: a proxy from create() passes to another
    assert b.area() == 12.0
    a.close(), b.close()
    assert _wait_deleted(log, "first") and _wait_deleted(log, "second")
    from interproc._objects import _client

    for shared in list(_client._shared.values()):
        shared.close()  # the shared connection lives as long as the process otherwise


def test_ls_shows_object_servers(server):
    conn, address, *_ = server
    c = conn.create("Shapes.Circle", 1.0)
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), "..", "src"))
    deadline = time.monotonic() + 10
    while True:
        out = subprocess.run([sys.executable, "-m", "interproc", "ls", "--json", "--kind", "objects"],
                             capture_output=True, text=True, env=env, timeout=30)
        assert out.returncode == 0, out.stderr
        mine = [o for o in json.loads(out.stdout) if o["name"] == address]
        if mine and "Shapes.Circle=1" in mine[0]["details"]["classes"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert mine and mine[0]["state"] == "alive"
    assert "Shapes.Circle=1" in mine[0]["details"]["classes"]
    out = subprocess.run([sys.executable, "-m", "interproc", "objects", "ls", address,
                          *(["--authkey-env", "K"] if address.startswith("tcp") else [])],
                         capture_output=True, text=True, env=dict(env, K="secret"), timeout=30)
    assert out.returncode == 0, out.stderr
    assert "Shapes.Circle" in out.stdout and "Circle" in out.stdout
    c.close()


def test_proxy_only_goes_back_to_its_own_server(server):
    conn, *_ = server

    class Box:
        def put(self, thing):
            return thing is not None

    local = objects.Server(f"unix://{short_tmpdir()}/other.sock").start()
    try:
        local.register("Local.Box", Box)
        with objects.connect(local.address, timeout=10) as other:
            box = other.create("Local.Box")
            c = conn.create("Shapes.Circle", 1.0)
            with pytest.raises(TypeError, match="only back to the server"):
                box.put(c)
            assert box.put(3) is True
            c.close()
    finally:
        local.close()


def test_junk_from_a_peer_is_an_error_answer_not_a_crash(server):
    """A peer speaking the wire badly (through a raw rpc proxy) gets error answers;
    the server and other clients go on."""
    from interproc import rpc

    conn, address, mode, *_ = server
    opts = {"authkey": b"secret"} if mode == "authkey" else {}
    c = conn.create("Shapes.Circle", 1.0)
    with rpc.connect(address, timeout=10, **opts) as raw:
        for method, params in [("obj.call", [[1], "area", [], {}]), ("obj.call", [c._oid, "area", [], {}]),
                               ("obj.get", [None, 5]), ("obj.release", [c._oid, -3]),
                               ("obj.call", [c._oid, "same", [{"$ref": ["y", "x"]}], {}]),
                               ("obj.call", [c._oid, "same", [{"$ref": ["m", 1, 999]}], {}]),
                               ("obj.describe", [1]), ("obj.nothing", []), ("obj.create", [7])]:
            with pytest.raises(RemoteError):
                raw.call(method, *params)
    assert c.area() == 3.0  # the object of another connection was not reachable, nor hurt
    c.close()


def test_timeout_and_server_death(server):
    conn, address, mode, log, proc = server
    c = conn.create("Shapes.Circle", 1.0)
    conn.timeout = 0.3
    with pytest.raises(interproc.Timeout):
        c.sleep(2)
    conn.timeout = 10
    assert c.area() == 3.0  # the late reply was discarded; the connection goes on
    got: list[BaseException] = []

    def call() -> None:
        try:
            c.sleep(30)
        except BaseException as exc:  # noqa: BLE001 - what the caller sees is the point
            got.append(exc)

    import threading

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.3)
    proc.kill()  # the server dies mid-call
    t.join(10)
    assert not t.is_alive() and got and isinstance(got[0], interproc.ChannelClosed)


def test_tour_step_runs():
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), "..", "src"))
    out = subprocess.run([sys.executable, "-m", "interproc", "tour", "--only", "objects", "--json"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    (step,) = json.loads(out.stdout)
    assert step["status"] == "ok", step
    assert "NoInterface" in step["detail"] and "__del__ ran" in step["detail"]


def test_tracebacks_off():
    class Boom:
        def fail(self) -> None:
            raise KeyError("secret path /etc/x")

    with objects.Server(f"unix://{short_tmpdir()}/tb.sock", tracebacks=False).start() as srv:
        srv.register("T.Boom", Boom)
        with objects.connect(srv.address, timeout=10) as conn:
            b = conn.create("T.Boom")
            with pytest.raises(RemoteError) as info:
                b.fail()
            assert info.value.remote_type == "KeyError" and info.value.traceback_text == ""


def test_bad_arguments():
    with pytest.raises(ValueError):
        objects.Server("tcp://127.0.0.1:0", ping_interval=0, authkey=b"k")
    srv = objects.Server(f"unix://{short_tmpdir()}/s.sock")
    try:
        with pytest.raises(ValueError):
            srv.register("not a progid", object)
        with pytest.raises(TypeError):
            srv.register("A.B", object())  # type: ignore[arg-type]
    finally:
        srv.close()


@pytest.mark.parametrize("kind", ["tcp-tls", "pipe"])
def test_battery_over_tls_and_pipe(kind, name, spawn, tmp_path):
    """The short battery over the other transports: create, call, property, by reference,
    identity, callback, remote error, release."""
    log = str(tmp_path / "deleted.log")
    extra: list[str] = []
    opts: dict = {}
    if kind == "tcp-tls":
        d = short_tmpdir()
        contexts = make_tls_contexts(d)
        if contexts is None:
            pytest.skip("openssl is not installed")
        extra = [os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")]
        opts["ssl"] = contexts[1]
        address, mode = "tcp://127.0.0.1:0", "tls"
    else:
        address, mode = f"pipe://{name}", "plain"
    proc = spawn(SERVER, address, mode, log, *extra, stdin=subprocess.PIPE)
    served = wait_for_line(proc, "ADDRESS").split()[1]
    try:
        with objects.connect(served, timeout=10, **opts) as conn:
            c = conn.create("Shapes.Circle", 2.0, "battery")
            assert c.area() == 12.0 and c.radius == 2.0
            c.radius = 1.0
            g = c.grown("grown-b")
            assert g.radius == 2.0 and c.same(c) and not c.same(g)
            v = Visitor()
            assert c.visit(v, 2) == ["saw 0.0", "saw 1.0"]
            with pytest.raises(RemoteError):
                c.lookup("zz")
            c.close()
            del g
            assert _wait_deleted(log, "battery") and _wait_deleted(log, "grown-b")
    finally:
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        proc.wait(10)


def test_asyncio_proxy(spawn, tmp_path):
    """objects.aio against a server process: methods, properties, interfaces, by
    reference, an async callback, release on close and on GC."""
    import asyncio

    from interproc.objects import aio as objects_aio

    log = str(tmp_path / "deleted.log")
    proc = spawn(SERVER, f"unix://{short_tmpdir()}/aio.sock", "plain", log, stdin=subprocess.PIPE)
    served = wait_for_line(proc, "ADDRESS").split()[1]

    class AsyncVisitor:
        def __init__(self) -> None:
            self.got: list[float] = []

        async def seen(self, value: float) -> str:
            await asyncio.sleep(0)
            self.got.append(value)
            return f"async {value}"

    async def main() -> None:
        async with await objects_aio.connect(served, timeout=10) as conn:
            c = await conn.create("Shapes.Circle", 2.0, "aio")
            assert isinstance(c, objects_aio.AsyncObjectProxy)
            assert await c.area() == 12.0 and await c.radius == 2.0
            await c.set("radius", 1.0)
            assert await c.radius == 1.0
            with pytest.raises(AttributeError):
                c.radius = 5.0
            with pytest.raises(AttributeError):
                await c.missing
            shape = await c.query_interface(IShape)
            assert await shape.area() == 3.0
            with pytest.raises(objects.NoInterface):
                await c.query_interface(IOther)
            g = await c.grown("aio-grown")
            assert await c.same(c) and not await c.same(g)
            v = AsyncVisitor()
            assert await c.visit(v, 2) == ["async 0.0", "async 1.0"]
            with pytest.raises(RemoteError) as info:
                await c.lookup("q")
            assert info.value.remote_type == "KeyError"
            c.close()
            del g
            for _ in range(200):
                gc.collect()
                if {"aio", "aio-grown"} <= set(_deleted(log)):
                    break
                await asyncio.sleep(0.05)
            assert {"aio", "aio-grown"} <= set(_deleted(log))

    try:
        asyncio.run(main())
    finally:
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        proc.wait(10)


def test_connect_to_a_plain_rpc_server_says_so():
    from interproc import rpc

    class Calc:
        def add(self, a: int, b: int) -> int:
            return a + b

    with rpc.Server(Calc(), f"unix://{short_tmpdir()}/rpc.sock").start() as srv:
        with pytest.raises(interproc.ProtocolError, match="not an interproc.objects server"):
            objects.connect(srv.address, timeout=10)
