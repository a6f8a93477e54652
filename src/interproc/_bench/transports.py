"""Transport benchmarks: interproc's pipes and sockets against the baselines.

Three measurements per transport, each between two processes (the peer is
forked, so both sides run the same code):

* ``rtt_64B``     round-trip latency of a 64-byte message (µs, lower is better)
* ``tput_64B``    one-way throughput of 64-byte messages (messages/s)
* ``tput_1MiB``   one-way throughput of 1 MiB messages (MiB/s)

Baselines run in the same process and the same moment: ``multiprocessing``
Pipe, raw ``os.pipe``, raw AF_UNIX/TCP sockets (fixed-size reads, one system
call per message, no framing) and pyzmq ``ipc://`` PAIR sockets.  Each
number is the best of ``repeat`` runs, since the machine may be shared.

``run(quick=True) -> list[dict]`` is what ``interproc bench`` and
``benchmarks/transports_bench.py`` call.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from typing import Any, Callable

from . import fork_peer, reap_peer

SMALL = 64
LARGE = 1024 * 1024


# -- endpoints: send(data) / recv(size) / close() ---------------------------------------

class _ChannelEP:
    def __init__(self, tx: Any, rx: Any = None) -> None:
        self.tx, self.rx = tx, rx or tx

    def send(self, data: bytes) -> None:
        self.tx.send(data)

    def recv(self, size: int) -> bytes:
        return self.rx.recv()

    def close(self) -> None:
        self.tx.close()
        self.rx.close()


class _MpEP:
    def __init__(self, tx: Any, rx: Any = None) -> None:
        self.tx, self.rx = tx, rx or tx

    def send(self, data: bytes) -> None:
        self.tx.send_bytes(data)

    def recv(self, size: int) -> bytes:
        return self.rx.recv_bytes()

    def close(self) -> None:
        self.tx.close()
        self.rx.close()


class _Exact:
    """Reads of exactly ``size`` bytes into one reused buffer, returned as bytes
    (one copy, no fresh large allocation: the cheapest a bytes-returning API can do)."""

    def __init__(self, read_into: Callable[[memoryview], int]) -> None:
        self.read_into = read_into
        self.buf = bytearray(LARGE)

    def __call__(self, size: int) -> bytes:
        view = memoryview(self.buf)[:size]
        got = 0
        while got < size:
            n = self.read_into(view[got:])
            if n == 0:
                raise EOFError
            got += n
        return view.tobytes()


class _RawFdEP:
    """Raw pipe fds: one write per message, reads of exactly the known size."""

    def __init__(self, wfd: int, rfd: int) -> None:
        self.wfd, self.rfd = wfd, rfd
        self._exact = _Exact(lambda v: os.readv(rfd, [v]))

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.wfd, view):]

    def recv(self, size: int) -> bytes:
        return self._exact(size)

    def close(self) -> None:
        os.close(self.wfd)
        os.close(self.rfd)


class _RawSockEP:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._exact = _Exact(sock.recv_into)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, size: int) -> bytes:
        return self._exact(size)

    def close(self) -> None:
        self.sock.close()


class _ZmqEP:
    def __init__(self, address: str, bind: bool) -> None:
        import zmq

        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.PAIR)
        self.sock.setsockopt(zmq.LINGER, 1000)
        self.sock.setsockopt(zmq.SNDHWM, 0)  # unlimited, so the one-way runs are not throttled by HWM
        self.sock.setsockopt(zmq.RCVHWM, 0)
        (self.sock.bind if bind else self.sock.connect)(address)

    def send(self, data: bytes) -> None:
        self.sock.send(data, copy=len(data) < 65536)

    def recv(self, size: int) -> bytes:
        return self.sock.recv()

    def close(self) -> None:
        self.sock.close()
        self.ctx.term()


# -- transports: build() -> (open_parent, open_child, cleanup) -------------------------

def _interproc_pipe():
    from ..pipes import pipe

    (r1, w1), (r2, w2) = pipe(), pipe()
    return (lambda: (r2.close(), w1.close(), _ChannelEP(w2, r1))[-1],
            lambda: (r1.close(), w2.close(), _ChannelEP(w1, r2))[-1], lambda: None)


def _named_pipe():
    from ..pipes import NamedPipe

    name = f"bench.{os.getpid()}.{time.monotonic_ns()}"
    srv = NamedPipe.serve(name)
    return (lambda: _ChannelEP(srv.accept(timeout=30)),
            lambda: _ChannelEP(NamedPipe.connect(name, timeout=30)), srv.close)


def _unix_socket(tmp: str):
    from ..sockets import connect_unix, listen_unix

    path = os.path.join(tmp, "bench.sock")
    lst = listen_unix(path)
    return (lambda: _ChannelEP(lst.accept(timeout=30)), lambda: _ChannelEP(connect_unix(path, timeout=30)),
            lst.close)


def _tcp(authkey: bytes | None = None):
    from ..sockets import connect_tcp, listen_tcp

    lst = listen_tcp("127.0.0.1", 0, authkey=authkey)
    port = int(lst.address.rsplit(":", 1)[1])
    return (lambda: _ChannelEP(lst.accept(timeout=30)),
            lambda: _ChannelEP(connect_tcp("127.0.0.1", port, timeout=30, authkey=authkey)), lst.close)


def _mp_pipe():
    import multiprocessing

    a, b = multiprocessing.Pipe(duplex=True)
    return (lambda: (b.close(), _MpEP(a))[-1], lambda: (a.close(), _MpEP(b))[-1], lambda: None)


def _raw_pipe():
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    return (lambda: (os.close(r2), os.close(w1), _RawFdEP(w2, r1))[-1],
            lambda: (os.close(r1), os.close(w2), _RawFdEP(w1, r2))[-1], lambda: None)


def _raw_unix():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return (lambda: (b.close(), _RawSockEP(a))[-1], lambda: (a.close(), _RawSockEP(b))[-1], lambda: None)


def _raw_tcp():
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen()
    port = lst.getsockname()[1]

    def parent():
        conn, _ = lst.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _RawSockEP(conn)

    def child():
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _RawSockEP(s)

    return parent, child, lst.close


def _zmq(tmp: str):
    import zmq  # noqa: F401  (fail early if pyzmq is missing)

    address = f"ipc://{tmp}/zmq.ipc"
    return lambda: _ZmqEP(address, True), lambda: _ZmqEP(address, False), lambda: None


#: name -> (builder, what it is compared with for the framing overhead)
TRANSPORTS: dict[str, tuple[Callable, str | None]] = {
    "interproc pipe": (lambda tmp: _interproc_pipe(), "raw os.pipe"),
    "interproc named pipe": (lambda tmp: _named_pipe(), "raw unix socket"),
    "interproc unix://": (_unix_socket, "raw unix socket"),
    "interproc tcp://": (lambda tmp: _tcp(), "raw tcp socket"),
    "interproc tcp:// authkey": (lambda tmp: _tcp(b"bench-key"), "raw tcp socket"),
    "multiprocessing.Pipe": (lambda tmp: _mp_pipe(), None),
    "raw os.pipe": (lambda tmp: _raw_pipe(), None),
    "raw unix socket": (lambda tmp: _raw_unix(), None),
    "raw tcp socket": (lambda tmp: _raw_tcp(), None),
    "pyzmq ipc:// PAIR": (_zmq, None),
}
BASELINES = ("multiprocessing.Pipe", "raw os.pipe", "raw unix socket", "raw tcp socket", "pyzmq ipc:// PAIR")


# -- the three measurements -------------------------------------------------------------

def _child_echo(ep: Any, n: int) -> None:
    for _ in range(n):
        ep.send(ep.recv(SMALL))


def _child_sink(ep: Any, n: int, size: int) -> None:
    for _ in range(n):
        ep.recv(size)
    ep.send(b"k" * SMALL)


def _one_run(name: str, test: str, n: int, tmp: str) -> float:
    build, _ = TRANSPORTS[name]
    open_parent, open_child, cleanup = build(tmp)
    size = LARGE if test == "tput_1MiB" else SMALL

    def child() -> None:
        ep = open_child()
        if test == "rtt_64B":
            _child_echo(ep, n + 10)
        else:
            _child_sink(ep, n, size)
        ep.close()

    pid = fork_peer(child)
    try:
        ep = open_parent()
        msg = os.urandom(size)
        if test == "rtt_64B":
            for _ in range(10):  # warm up
                ep.send(msg)
                ep.recv(SMALL)
            t0 = time.perf_counter()
            for _ in range(n):
                ep.send(msg)
                ep.recv(SMALL)
            elapsed = time.perf_counter() - t0
            value = elapsed / n * 1e6
        else:
            t0 = time.perf_counter()
            for _ in range(n):
                ep.send(msg)
            ep.recv(SMALL)  # the peer has received everything
            elapsed = time.perf_counter() - t0
            value = n / elapsed if test == "tput_64B" else n * size / elapsed / 2**20
        ep.close()
    except BaseException:
        os.waitpid(pid, 0)
        cleanup()
        raise
    try:
        reap_peer(pid, name)
    finally:
        cleanup()
    return value


TESTS = {"rtt_64B": ("µs", False), "tput_64B": ("msg/s", True), "tput_1MiB": ("MiB/s", True)}


COUNTS = {"rtt_64B": 2000, "tput_64B": 20000, "tput_1MiB": 100}


def _result(name: str, test: str, n: int, values: list[float]) -> dict:
    unit, higher_better = TESTS[test]
    best = max(values) if higher_better else min(values)
    return {"transport": name, "test": test, "value": best, "unit": unit, "n": n, "runs": values,
            "higher_is_better": higher_better}


def measure(name: str, test: str, *, quick: bool = True, repeat: int = 3) -> dict:
    """One number: the best of ``repeat`` runs of ``test`` over transport ``name``."""
    n = COUNTS[test] * (1 if quick else 10)
    tmp = tempfile.mkdtemp(prefix="ipbench-", dir="/tmp")
    try:
        values = [_one_run(name, test, n, tmp) for _ in range(repeat)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _result(name, test, n, values)


def run(quick: bool = True, only: list[str] | None = None, tests: list[str] | None = None,
        repeat: int = 3) -> list[dict]:
    """Every transport x every test, best of ``repeat``.

    The runs are interleaved (round 1 of every transport, then round 2 ...)
    so that a burst of load from other programs hits all transports alike
    rather than one of them.  A transport whose library is missing is
    reported with ``skipped``.
    """
    names = [n for n in TRANSPORTS if not only or n in only]
    tests = list(tests or TESTS)
    values: dict[tuple[str, str], list[float]] = {}
    skipped: dict[tuple[str, str], str] = {}
    tmp = tempfile.mkdtemp(prefix="ipbench-", dir="/tmp")
    try:
        for _ in range(repeat):
            for test in tests:
                n = COUNTS[test] * (1 if quick else 10)
                for name in names:
                    if (name, test) in skipped:
                        continue
                    try:
                        values.setdefault((name, test), []).append(_one_run(name, test, n, tmp))
                    except ImportError as exc:
                        skipped[(name, test)] = str(exc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results = []
    for name in names:
        for test in tests:
            if (name, test) in skipped:
                results.append({"transport": name, "test": test, "skipped": skipped[(name, test)]})
            else:
                results.append(_result(name, test, COUNTS[test] * (1 if quick else 10), values[(name, test)]))
    return results


def overheads(results: list[dict]) -> list[dict]:
    """Framing overhead of each interproc transport over the raw transport it wraps."""
    table = {(r["transport"], r["test"]): r for r in results if "value" in r}
    out = []
    for name, (_, base) in TRANSPORTS.items():
        if base is None:
            continue
        for test, (unit, higher_better) in TESTS.items():
            ours, raw = table.get((name, test)), table.get((base, test))
            if not ours or not raw:
                continue
            # overhead = how much more time per message than the raw transport
            cost = raw["value"] / ours["value"] if higher_better else ours["value"] / raw["value"]
            out.append({"transport": name, "baseline": base, "test": test, "overhead": cost - 1.0})
    return out


def format_table(results: list[dict]) -> str:
    """Markdown: one row per transport, one column per test, plus ratio to multiprocessing.Pipe."""
    table = {(r["transport"], r["test"]): r for r in results if "value" in r}
    names = list(dict.fromkeys(r["transport"] for r in results))
    head = "| transport | RTT 64 B (µs) | 64 B msg/s | 1 MiB MiB/s | RTT vs mp.Pipe | msg/s vs mp.Pipe | MiB/s vs mp.Pipe |"
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|"]
    mp = {t: table.get(("multiprocessing.Pipe", t)) for t in TESTS}
    for name in names:
        cells, ratios = [], []
        for test, (_, higher_better) in TESTS.items():
            r = table.get((name, test))
            cells.append("-" if r is None else (f"{r['value']:.1f}" if test != "tput_64B" else f"{r['value']:,.0f}"))
            base = mp[test]
            if r is None or base is None:
                ratios.append("-")
            else:  # > 1.00x means faster than multiprocessing.Pipe
                ratio = r["value"] / base["value"] if higher_better else base["value"] / r["value"]
                ratios.append(f"{ratio:.2f}x")
        lines.append(f"| {name} | " + " | ".join(cells + ratios) + " |")
    return "\n".join(lines)
