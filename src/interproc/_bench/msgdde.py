"""Window-message and DDE benchmarks, each against the peer a user would pick, in one run.

* ``send_message`` round trip (a window pumping in another process) against an
  ``interproc.rpc`` call over ``shm://`` (the target: within 2x), a pyzmq
  REQ/REP round trip over ipc:// and a bare send + recv on an shm:// channel;
* ``post_message`` throughput (each post returns once queued);
* DDE hot-link fan-out to 1, 4 and 16 client processes (updates/s delivered
  in total over the time from the first publish until the last client had them all,
  latency p50/p99 from ``set`` to callback) against pyzmq PUB/SUB
  with the same publisher loop.  Both publish as fast as they can: DDE keeps
  the newest value per link, PUB/SUB drops at its high-water mark.  The two
  take turns, ``rounds`` times (1 quick, 3 full), and rows are medians.  A
  paced run (1000 updates/s) gives the latency at a rate every client keeps up with.

Peers are separate ``python`` processes; every wait is bounded.
``extra_results(options)`` puts the rows in ``interproc bench``'s table;
``run(quick=True) -> list[dict]`` has them all, paced rows too.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from . import percentile

_SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _spawn(code: str, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=_SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.PIPE, text=True, env=env)


def _ready(proc: subprocess.Popen, what: str, timeout: float = 30) -> str:
    import select

    r, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if r else ""
    if not line:
        proc.kill()
        raise RuntimeError(f"{what} did not start: {proc.stderr.read()[-500:]}")
    return line.strip()


def _finish(proc: subprocess.Popen, timeout: float = 30) -> str:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError("a benchmark peer did not finish in time") from None
    if proc.returncode != 0:
        raise RuntimeError(f"a benchmark peer failed: {err[-500:]}")
    return out


def _unique(tag: str) -> str:
    return f"bench.{tag}.{os.getpid()}.{time.monotonic_ns() % 10**9}"


def _latencies(call: Any, budget: float, limit: int) -> list[float]:
    for _ in range(50):  # warm up
        call()
    samples = []
    end = time.perf_counter() + budget
    while time.perf_counter() < end and len(samples) < limit:
        t0 = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - t0) / 1000)
    return samples


_WINDOW = """
import sys
from interproc import messages
win = messages.Window(sys.argv[1])
win.handler(0x400)(lambda m: m.wparam)
win.handler(0x401)(lambda m: None)
win.handler(0x402)(lambda m: win.quit())
print("ready", flush=True)
win.run()
win.close()
"""

_SHM_ECHO = """
import sys, interproc
lst = interproc.listen("shm://" + sys.argv[1])
print("ready", flush=True)
ch = lst.accept(timeout=30)
try:
    while True:
        ch.send(ch.recv(timeout=60))
except interproc.ChannelClosed:
    pass
ch.close(); lst.close()
"""

_RPC_SERVER = """
import sys
from interproc import rpc
class Echo:
    def echo(self, x):
        return x
srv = rpc.Server(Echo(), "shm://" + sys.argv[1]).start()
print("ready", flush=True)
sys.stdin.readline()  # until the benchmark says so
srv.close()
"""

_ZMQ_REP = """
import sys, zmq
ctx = zmq.Context(); s = ctx.socket(zmq.REP); s.bind(sys.argv[1])
print("ready", flush=True)
s.setsockopt(zmq.RCVTIMEO, 60000)
while True:
    m = s.recv()
    s.send(m)
    if m == b"quit":
        break
s.close(); ctx.term()
"""


def _row(transport: str, metric: str, unit: str, values: list[float], higher: bool, **extra: Any) -> dict:
    value = statistics.median(values) if values else None
    tail = percentile(values, 1 if higher else 99) if values else None
    return {"transport": transport, "metric": metric, "unit": unit, "value": value, "p99": tail,
            "higher_is_better": higher, **extra}


def bench_messages(quick: bool) -> list[dict]:
    budget = 0.5 if quick else 2.0
    out: list[dict] = []
    import interproc
    from interproc import messages

    name = _unique("win")
    win = _spawn(_WINDOW, name)
    try:
        _ready(win, "the window process")
        rtt = _latencies(lambda: messages.send_message(name, 0x400, 1, timeout=10), budget, 200_000)
        out.append(_row("messages send_message", "rtt", "us", rtt, False))
        n = 2000 if quick else 8000
        t0 = time.perf_counter()
        for i in range(n):
            messages.post_message(name, 0x401, i, timeout=10)
        out.append(_row("messages post_message", "throughput", "msg/s", [n / (time.perf_counter() - t0)], True))
        messages.post_message(name, 0x402, timeout=10)
        _finish(win)
    except interproc.InterprocError as exc:
        if win.poll() is None:
            win.kill()
        raise RuntimeError(f"{exc}; the window process said: {win.communicate()[1][-800:]!r}") from exc
    finally:
        if win.poll() is None:
            win.kill()
            win.communicate()

    chan = _unique("echo")
    echo = _spawn(_SHM_ECHO, chan)
    try:
        import interproc

        _ready(echo, "the shm:// echo process")
        with interproc.connect(f"shm://{chan}", timeout=10) as ch:
            counter = [0]

            def call() -> None:
                counter[0] += 1
                payload = counter[0].to_bytes(26, "little")  # the size of a window-message frame
                ch.send(payload)
                if ch.recv(timeout=10) != payload:
                    raise RuntimeError("the shm:// echo answered something else")

            shm_rtt = _latencies(call, budget, 500_000)
        _finish(echo)
        out.append(_row("bare send+recv over shm://", "rtt", "us", shm_rtt, False,
                        note="a bare send + recv on an shm:// channel, no RPC layer"))
    finally:
        if echo.poll() is None:
            echo.kill()
            echo.communicate()

    out.append(_bench_rpc(budget))
    try:
        import zmq
    except ImportError:
        out.append({"transport": "pyzmq REQ/REP", "metric": "rtt", "unit": "us", "status": "error",
                    "reason": "pyzmq is not installed: pip install 'interproc[bench]'"})
        return out
    with tempfile.TemporaryDirectory() as d:
        addr = f"ipc://{d}/rep"
        rep = _spawn(_ZMQ_REP, addr)
        try:
            _ready(rep, "the zmq REP process")
            ctx = zmq.Context()
            s = ctx.socket(zmq.REQ)
            s.setsockopt(zmq.RCVTIMEO, 10000)
            s.connect(addr)

            def zcall() -> None:
                s.send(b"x" * 26)
                s.recv()

            z = _latencies(zcall, budget, 500_000)
            s.send(b"quit")
            s.recv()
            s.close()
            ctx.term()
            _finish(rep)
            out.append(_row("pyzmq REQ/REP ipc://", "rtt", "us", z, False))
        finally:
            if rep.poll() is None:
                rep.kill()
                rep.communicate()
    base = {r["transport"]: r["value"] for r in out if r.get("value")}
    for r in out:
        if r["metric"] == "rtt" and r.get("value") and base.get(_RPC_ROW):
            r["x_shm_rpc"] = round(r["value"] / base[_RPC_ROW], 2)  # the target: send_message <= 2x
    return out


_RPC_ROW = "rpc call shm://"


def _bench_rpc(budget: float) -> dict:
    """An interproc.rpc call over shm:// to another process: the send_message target's yardstick."""
    from interproc import rpc

    chan = _unique("rpc")
    proc = _spawn(_RPC_SERVER, chan)
    try:
        _ready(proc, "the rpc server process")
        with rpc.connect(f"shm://{chan}", timeout=10) as p:
            samples = _latencies(lambda: p.call("echo", 1, timeout=10), budget, 200_000)
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        _finish(proc)
        return _row(_RPC_ROW, "rtt", "us", samples, False)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


_DDE_CLIENT = """
import json, sys, threading, time
from interproc import dde
conv = dde.connect(sys.argv[1], "T", timeout=30)
lat, count, done = [], [0], threading.Event()
end = [0]
def on(item, value):
    if value == "END":
        end[0] = time.monotonic_ns(); done.set(); return
    count[0] += 1
    if count[0] % 7 == 0 and len(lat) < 5000:
        lat.append((time.monotonic_ns() - int(value)) / 1000)
link = conv.advise("X", hot=True, callback=on)
print("linked", flush=True)
done.wait(120)
print(json.dumps({"count": count[0], "lat": lat, "dropped": link.dropped, "end_ns": end[0]}), flush=True)
conv.close()
"""

_ZMQ_SUB = """
import json, sys, time, zmq
ctx = zmq.Context(); s = ctx.socket(zmq.SUB); s.setsockopt(zmq.SUBSCRIBE, b""); s.connect(sys.argv[1])
s.setsockopt(zmq.RCVTIMEO, 120000)
print("linked", flush=True)
lat, count = [], 0
while True:
    m = s.recv()
    if m == b"END":
        end_ns = time.monotonic_ns()
        break
    if m == b"HELLO":
        continue
    count += 1
    if count % 7 == 0 and len(lat) < 5000:
        lat.append((time.monotonic_ns() - int(m)) / 1000)
print(json.dumps({"count": count, "lat": lat, "end_ns": end_ns}), flush=True)
s.close(); ctx.term()
"""


def _collect(procs: list, start_ns: int, what: str, n: int, rate: float | None, sent: int) -> dict:
    """A case's row: updates delivered per second, over the time from the first publish
    until the last client had everything (END, which comes after every value it got): what
    a queue still held when publishing stopped counts, and so does the time to drain it."""
    outs = [json.loads(_finish(p, 60).strip().splitlines()[-1]) for p in procs]
    seconds = (max(o["end_ns"] for o in outs) - start_ns) / 1e9
    lat = [x for o in outs for x in o["lat"]]
    row = {"transport": what, "metric": f"fanout_{n}" + (f"_paced{int(rate)}" if rate else ""), "unit": "updates/s",
           "published": sent, "delivered_fraction": round(sum(o["count"] for o in outs) / max(1, sent * n), 3),
           "value": sum(o["count"] for o in outs) / seconds, "seconds": round(seconds, 3), "higher_is_better": True,
           "p50_us": round(percentile(lat, 50), 1) if lat else None,
           "p99_us": round(percentile(lat, 99), 1) if lat else None}
    if "dropped" in outs[0]:
        row["superseded"] = sum(o["dropped"] for o in outs)
    return row


def _pace(rate: float | None):
    """A publisher loop's clock: without a rate, as fast as possible; with one, on a fixed schedule."""
    if rate is None:
        return lambda i: None
    start = time.monotonic()

    def wait(i: int) -> None:
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    return wait


def _fanout_dde(n: int, seconds: float, rate: float | None = None) -> dict:
    from interproc import dde

    service = _unique("dde")
    procs: list = []
    with dde.Server(service) as srv:
        srv.set("T", "X", "0")
        srv.start()
        try:
            procs = [_spawn(_DDE_CLIENT, service) for _ in range(n)]
            for p in procs:
                _ready(p, "a DDE client", 60)
            start_ns = time.monotonic_ns()
            end, pace, i = time.monotonic() + seconds, _pace(rate), 0
            while time.monotonic() < end:
                pace(i)
                srv.set("T", "X", str(time.monotonic_ns()))
                i += 1
            srv.set("T", "X", "END")
            return _collect(procs, start_ns, "dde hot link", n, rate, i)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.communicate()


def _fanout_zmq(n: int, seconds: float, rate: float | None = None) -> dict:
    import zmq

    procs: list = []
    with tempfile.TemporaryDirectory() as d:
        addr = f"ipc://{d}/pub"
        ctx = zmq.Context()
        pub = ctx.socket(zmq.PUB)
        pub.bind(addr)
        try:
            procs = [_spawn(_ZMQ_SUB, addr) for _ in range(n)]
            for p in procs:
                _ready(p, "a zmq SUB client", 60)
            for _ in range(50):  # let the subscriptions arrive (the slow-joiner rule)
                pub.send(b"HELLO")
                time.sleep(0.01)
            start_ns = time.monotonic_ns()
            end, pace, i = time.monotonic() + seconds, _pace(rate), 0
            send = pub.send
            while time.monotonic() < end:
                pace(i)
                send(str(time.monotonic_ns()).encode())
                i += 1
            for _ in range(2000):  # END may meet a full queue: repeat (often) until every SUB has left
                pub.send(b"END")
                time.sleep(0.002)
                if all(p.poll() is not None for p in procs):
                    break
            return _collect(procs, start_ns, "pyzmq PUB/SUB ipc://", n, rate, i)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.communicate()
            pub.close(linger=0)
            ctx.term()


def _combine(rows: list[dict]) -> dict:
    """One row from the rounds of one case: medians, and every round's value."""
    out = dict(rows[0])
    for key in ("value", "p50_us", "p99_us", "delivered_fraction"):
        got = [r[key] for r in rows if r.get(key) is not None]
        out[key] = statistics.median(got) if got else None
    out["published"] = round(statistics.median(r["published"] for r in rows))
    out["rounds"] = [round(r["value"]) for r in rows]
    return out


def bench_fanout(quick: bool, counts: tuple[int, ...] = (1, 4, 16), rate: float | None = None,
                 rounds: int | None = None) -> list[dict]:
    """Hot-link fan-out; ``rate=None`` publishes flat out, a rate paces the publisher (latency).

    DDE and PUB/SUB take turns, ``rounds`` times each (1 quick, 3 full), so that both see the
    same machine (other load comes and goes); each row is the median of its rounds."""
    seconds = 1.0 if quick else 3.0
    rounds = rounds or (1 if quick else 3)
    out = []
    try:
        import zmq  # noqa: F401
        have_zmq = True
    except ImportError:
        have_zmq = False
    for n in counts:
        dde_rounds, zmq_rounds = [], []
        for _ in range(rounds):
            dde_rounds.append(_fanout_dde(n, seconds, rate))
            if have_zmq:
                zmq_rounds.append(_fanout_zmq(n, seconds, rate))
        d = _combine(dde_rounds)
        out.append(d)
        if zmq_rounds:
            z = _combine(zmq_rounds)
            out.append(z)
            d["x_pyzmq"] = round(d["value"] / z["value"], 2) if z["value"] else None
    return out


def run(quick: bool = True) -> list[dict]:
    return bench_messages(quick) + bench_fanout(quick) + bench_fanout(quick, rate=1000.0)


# the row names `interproc bench --only TEXT` matches (as well as the module's name)
BASELINES = ("messages send_message", "messages post_message", "dde hot link fan-out")


def extra_results(options: Any) -> list[dict[str, Any]]:
    """The rows of ``interproc bench``'s table: send_message against an rpc call, pyzmq REQ/REP
    and a bare shm:// exchange (``rtt_64B``, µs); post_message and the hot-link fan-out against
    pyzmq PUB/SUB (``oneway_64B``, msg/s: updates delivered per second, all clients together;
    ``p50_us``/``p99_us`` are the set-to-callback latencies)."""
    quick = getattr(options, "quick", True)
    rows: list[dict[str, Any]] = []
    for r in bench_messages(quick):
        r = dict(r)
        if r.get("metric") == "rtt":
            r.update(metric="rtt_64B", unit="µs")
        elif r.get("metric") == "throughput":
            r.update(metric="oneway_64B", unit="msg/s", p99=None)
        rows.append(r)
    for r in bench_fanout(quick):
        n = r["metric"].split("_")[1]
        rows.append(dict(r, transport=f"{r['transport']} fan-out to {n}", metric="oneway_64B", unit="msg/s",
                         p99=None, median=r["value"]))
    return rows


if __name__ == "__main__":  # pragma: no cover
    for row in run(quick="--full" not in sys.argv):
        print(row)
