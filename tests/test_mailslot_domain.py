"""Domain mailslots: the datagram format, the security rules, and real broadcast
between two network namespaces ("hosts") joined by a veth pair.

Every multicast datagram these tests send is sent inside the namespaces: the
test process itself (in the host's namespace) never sends one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest

import interproc
from interproc._mailslot import _domain as domain
from interproc.mailslot import DOMAIN_MAX_MESSAGE_SIZE, Mailslot

from conftest import SRC, wait_for_line

KEY = b"test-domain-key"


# -- the datagram format (sans-I/O) -----------------------------------------
def test_signed_datagram_roundtrip_and_tampering():
    raw = domain.encode("alerts", b"disk full", b"S" * 8, 7, KEY)
    assert domain.decode(raw, KEY) == ("alerts", b"S" * 8, 7, b"disk full")
    tampered = bytearray(raw)
    tampered[-40] ^= 1  # a byte of the data
    with pytest.raises(interproc.ProtocolError, match="signature"):
        domain.decode(bytes(tampered), KEY)
    with pytest.raises(interproc.ProtocolError, match="signature"):
        domain.decode(raw, b"another key")
    unsigned = domain.encode("alerts", b"x", b"S" * 8, 1, None)
    with pytest.raises(interproc.ProtocolError, match="unsigned"):
        domain.decode(unsigned, KEY)
    assert domain.decode(unsigned, None)[3] == b"x"  # an insecure receiver takes it


@pytest.mark.parametrize(
    "raw",
    [b"", b"IPMD", b"XXXX" + bytes(30), b"IPMD\x01\x00\xff\xff" + bytes(16), b"IPMD\x01" + bytes(40), b"IPMD\x03" + bytes(40), os.urandom(200)],
)
def test_malformed_datagrams_are_protocol_errors(raw):
    for key in (KEY, None):
        with pytest.raises(interproc.ProtocolError):
            domain.decode(raw, key)


def test_sequence_tracker_counts_gaps_and_refuses_replays():
    t = domain.SequenceTracker()
    assert t.accept(b"a" * 8, 10)  # first sight: no gap known
    assert t.accept(b"a" * 8, 11)
    assert t.accept(b"a" * 8, 15)
    assert t.dropped == 3
    assert not t.accept(b"a" * 8, 15)  # replay
    assert not t.accept(b"a" * 8, 12)  # late or replayed
    assert t.accept(b"b" * 8, 1)
    assert t.dropped == 3


def test_domain_needs_authkey_or_insecure(name):
    with pytest.raises(ValueError, match="authkey"):
        Mailslot.write(name, b"x", scope="domain")
    with pytest.raises(ValueError, match="authkey"):
        Mailslot.create(name, domain=True)
    with pytest.raises(TypeError):
        Mailslot.write(name, b"x", scope="domain", authkey="not bytes")


def test_domain_size_limit_is_the_classic_424(name):
    assert DOMAIN_MAX_MESSAGE_SIZE == 424
    with pytest.raises(interproc.MessageTooLarge, match="424"):
        Mailslot.write(name, b"x" * 425, scope="domain", authkey=KEY)
    with pytest.raises(ValueError, match="ttl"):
        Mailslot.write(name, b"x", scope="domain", authkey=KEY, ttl=300)


# -- two hosts: network namespaces joined by a veth pair -----------------------
class Hosts:
    """Two namespaces a, b; 10.77.0.1 and 10.77.0.2 on a veth pair; multicast routed over it."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.ns = {"a": f"ipms-{tag}-a", "b": f"ipms-{tag}-b"}
        self.procs: list[subprocess.Popen] = []
        self.created: list[str] = []
        va, vb = f"msa{tag}", f"msb{tag}"
        for ns in self.ns.values():
            self._ip("netns", "add", ns)
            self.created.append(ns)
        a, b = self.ns["a"], self.ns["b"]
        # Created inside namespace a with its peer in b: never in the host's namespace.
        self._ip("-n", a, "link", "add", va, "type", "veth", "peer", "name", vb, "netns", b)
        for ns, dev, addr in ((a, va, "10.77.0.1/24"), (b, vb, "10.77.0.2/24")):
            self._ip("-n", ns, "addr", "add", addr, "dev", dev)
            self._ip("-n", ns, "link", "set", "lo", "up")
            self._ip("-n", ns, "link", "set", dev, "up")
            self._ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", dev)

    @staticmethod
    def _ip(*args: str) -> None:
        res = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
        if res.returncode:
            raise RuntimeError(f"ip {' '.join(args)}: {res.stderr.strip()}")

    def python(self, host: str, code: str, *args: str, env: dict | None = None) -> subprocess.Popen:
        """``python -c code`` in a host's namespace, with a private /dev/shm like a real machine."""
        env = dict(os.environ, PYTHONPATH=SRC, **(env or {}))
        shell = 'mount -t tmpfs -o mode=1777 tmpfs /dev/shm && exec "$@"'
        cmd = ["ip", "netns", "exec", self.ns[host], "unshare", "-m", "--propagation", "private",
               "sh", "-c", shell, "sh", sys.executable, "-c", code, *args]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.procs.append(proc)
        return proc

    def run(self, host: str, code: str, *args: str, env: dict | None = None) -> str:
        proc = self.python(host, code, *args, env=env)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        return out

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
def hosts():
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (run the tests as root to check domain broadcast)")
    if not shutil.which("ip") or not shutil.which("unshare"):
        pytest.skip("needs iproute2 'ip' and util-linux 'unshare'")
    h = Hosts.__new__(Hosts)
    h.created, h.procs = [], []
    try:
        Hosts.__init__(h)
    except Exception as exc:
        h.close()
        pytest.skip(f"cannot build network namespaces here: {exc}")
    try:
        yield h
    finally:
        h.close()


SERVER = """
import json, sys, time
from interproc.mailslot import Mailslot
name, key, n, iface = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3]), sys.argv[4]
slot = Mailslot.create(name, domain=True, authkey=key, interface=iface)
wrong = Mailslot.create(name, scope="global", mode=0o600, domain=True, authkey=b"not the key")
other = Mailslot.create(name + "-other", domain=True, authkey=key)
print("READY", flush=True)
got = [slot.read(timeout=20).decode() for _ in range(n)]
time.sleep(0.3)
print(json.dumps({"got": got, "dropped": slot.dropped, "rejected": slot.rejected,
                  "wrong_rejected": wrong.rejected, "wrong_pending": wrong.pending().count,
                  "other_pending": other.pending().count, "pending": slot.pending().count}), flush=True)
"""

WRITER = """
import sys
from interproc.mailslot import Mailslot
name, key, n = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
Mailslot.write(name, b"unsigned intruder", scope="domain", insecure=True)
Mailslot.write(name, b"ttl0", scope="domain", authkey=key, ttl=0)  # never leaves this host
for i in range(n):
    Mailslot.write(name, b"m%d" % i, scope="domain", authkey=key, interface="10.77.0.2")
"""


@pytest.mark.root
@pytest.mark.timeout(90)
def test_domain_broadcast_reaches_every_host(hosts, name):
    n = 5
    expected = {
        "a": [f"m{i}" for i in range(n)],  # across the veth
        "b": ["ttl0"] + [f"m{i}" for i in range(n)],  # the writer's own host, by multicast loopback
    }
    servers = {
        h: hosts.python(h, SERVER, name, KEY.decode(), str(len(expected[h])), ip)
        for h, ip in (("a", "10.77.0.1"), ("b", "10.77.0.2"))
    }
    for proc in servers.values():
        wait_for_line(proc, "READY", timeout=30)
    hosts.run("b", WRITER, name, KEY.decode(), str(n))
    for host, proc in servers.items():
        out, err = proc.communicate(timeout=40)
        assert proc.returncode == 0, f"server on {host}: {err}"
        result = json.loads(out.strip().splitlines()[-1])
        assert result["got"] == expected[host], host
        assert result["pending"] == 0  # in particular, a saw no "ttl0"
        assert result["dropped"] == 0
        assert result["rejected"] == 1  # the unsigned intruder
        assert result["wrong_rejected"] == len(expected[host]) + 1 and result["wrong_pending"] == 0
        assert result["other_pending"] == 0  # another name on the same group hears nothing


CLI = "import runpy, sys; sys.argv[0] = 'interproc'; runpy.run_module('interproc', run_name='__main__')"


@pytest.mark.root
@pytest.mark.timeout(90)
def test_domain_broadcast_from_the_command_line(hosts, name):
    key = {"INTERPROC_AUTHKEY": "cli-key"}
    reader = hosts.python("a", CLI, "mailslot", "read", name, "--domain", "--count", "1", "--timeout", "20", env=key)
    # The reader says on stderr where it listens, once its server exists.
    line = reader.stderr.readline()
    assert "239.255.77.76:47677" in line, line
    hosts.run("b", CLI, "mailslot", "write", name, "hello from b", "--domain", env=key)
    out, err = reader.communicate(timeout=30)
    assert reader.returncode == 0, err
    assert out == "hello from b\n"
    refused = hosts.python("b", CLI, "mailslot", "write", name, "x", "--domain", env={"INTERPROC_AUTHKEY": ""})
    out, err = refused.communicate(timeout=30)
    assert refused.returncode == 1 and "authkey" in err


DROP_SERVER = """
import json, sys, time
from interproc.mailslot import Mailslot
slot = Mailslot.create(sys.argv[1], domain=True, authkey=sys.argv[2].encode())
print("READY", flush=True)
got = [slot.read(timeout=20) for _ in range(4)]
time.sleep(0.3)
print(json.dumps({"got": [g.decode() for g in got], "dropped": slot.dropped, "rejected": slot.rejected,
                  "pending": slot.pending().count}), flush=True)
"""

RAW_SENDER = """
import socket, sys
from interproc._mailslot import _domain as d
name, key = sys.argv[1], sys.argv[2].encode()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
for seq in (1, 2, 5, 2, 6):   # 3 and 4 "lost"; 2 replayed
    s.sendto(d.encode(name, b"seq%d" % seq, b"sender-1", seq, key), (d.DOMAIN_GROUP, d.DOMAIN_PORT))
s.sendto(d.encode(name, b"x" * 500, b"sender-1", 7, key), (d.DOMAIN_GROUP, d.DOMAIN_PORT))  # over 424
s.sendto(d.encode(name, b"last", b"sender-1", 8, key), (d.DOMAIN_GROUP, d.DOMAIN_PORT))
"""


@pytest.mark.root
@pytest.mark.timeout(90)
def test_domain_counts_sequence_gaps_as_drops(hosts, name):
    server = hosts.python("a", DROP_SERVER, name, KEY.decode())
    wait_for_line(server, "READY", timeout=30)
    hosts.run("b", RAW_SENDER, name, KEY.decode())
    out, err = server.communicate(timeout=40)
    assert server.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["got"] == ["seq1", "seq2", "seq5", "seq6"]
    # 3 and 4 never came; 7 came but was over the size limit and refused.
    assert result["dropped"] == 2
    assert result["rejected"] == 2  # the replayed 2 and the oversized 7
    assert result["pending"] == 1  # "last"


COLLECTED = """
import gc, os, sys, threading, weakref
from interproc.mailslot import Mailslot
from interproc._naming import segment_name
slot = Mailslot.create(sys.argv[1], domain=True, authkey=b"k")
ref = weakref.ref(slot)
del slot
gc.collect()
assert ref() is None, "the receiver thread kept the server alive"
assert not [t for t in threading.enumerate() if t.name.startswith("interproc-mailslot-domain")]
assert not os.path.exists(os.path.join("/dev/shm", segment_name("mailslot", sys.argv[1])))
print("COLLECTED")
"""


@pytest.mark.root
def test_dropped_domain_server_is_collected(hosts, name):
    # In a namespace: even joining the group sends an IGMP report.
    assert "COLLECTED" in hosts.run("a", COLLECTED, name)
