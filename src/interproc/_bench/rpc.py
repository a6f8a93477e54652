"""RPC benchmarks: small calls (``add(i, 1)``) against Pyro5, RPyC and gRPC, in one run.

For every system a server process starts, then 1 and then 8 client
processes connect, warm up, wait for a common start time and call in a loop
for a fixed window, timing each call.  Reported: calls/s (summed over the
clients) and the per-call latency p50 / p99 (over every call of every
client), plus each row's ratio to Pyro5's calls/s with the same number of
clients.  Every wait is bounded (process start, the window, the reaping).

``extra_results(options)`` is what ``interproc bench`` calls; ``python -m
interproc._bench.rpc`` prints the rows.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

_SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SERVERS = {
    "interproc": r"""
import sys
from interproc import rpc
class Calc:
    def add(self, a, b):
        return a + b
srv = rpc.Server(Calc(), sys.argv[1])
print(srv.address, flush=True)
try:
    srv.serve_forever()
except KeyboardInterrupt:
    pass
finally:
    srv.close()
""",
    "Pyro5": r"""
import Pyro5.api
@Pyro5.api.expose
class Calc:
    def add(self, a, b):
        return a + b
daemon = Pyro5.api.Daemon(host="127.0.0.1")
print(daemon.register(Calc, "calc"), flush=True)
try:
    daemon.requestLoop()
except KeyboardInterrupt:
    pass
""",
    "RPyC": r"""
import rpyc
from rpyc.utils.server import ThreadedServer
class Calc(rpyc.Service):
    def exposed_add(self, a, b):
        return a + b
srv = ThreadedServer(Calc, hostname="127.0.0.1", port=0, protocol_config={"allow_public_attrs": False})
print(srv.port, flush=True)
try:
    srv.start()
except KeyboardInterrupt:
    pass
""",
    "gRPC": r"""
import struct, grpc
from concurrent import futures
def add(request, context):
    a, b = struct.unpack("<qq", request)
    return struct.pack("<q", a + b)
server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
handler = grpc.method_handlers_generic_handler("Calc", {"Add": grpc.unary_unary_rpc_method_handler(add)})
server.add_generic_rpc_handlers((handler,))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(port, flush=True)
try:
    server.wait_for_termination()
except KeyboardInterrupt:
    server.stop(0)
""",
}

CLIENT = r"""
import json, sys, time
system, address, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
if system == "interproc":
    from interproc import rpc
    p = rpc.connect(address, timeout=30)
    add = p.add
elif system == "Pyro5":
    import Pyro5.api
    p = Pyro5.api.Proxy(address)
    add = p.add
elif system == "RPyC":
    import rpyc
    c = rpyc.connect("127.0.0.1", int(address))
    add = c.root.add
else:
    import struct, grpc
    channel = grpc.insecure_channel(f"127.0.0.1:{address}")
    stub = channel.unary_unary("/Calc/Add")
    pack, unpack = struct.Struct("<qq").pack, struct.Struct("<q").unpack
    def add(a, b):
        return unpack(stub(pack(a, b), timeout=30))[0]
for i in range(300):
    assert add(i, 1) == i + 1
print("ready", flush=True)
start_at = float(sys.stdin.readline())  # the same start for every client, once all are warm
time.sleep(max(0.0, start_at - time.time()))
clock = time.perf_counter_ns
lat = []
t0 = clock()
end = t0 + int(seconds * 1e9)
i = 0
while True:
    a = clock()
    add(i, 1)
    b = clock()
    lat.append(b - a)
    i += 1
    if b >= end:
        break
elapsed = (clock() - t0) / 1e9
lat.sort()
step = max(1, len(lat) // 2000)  # a sample is enough for the percentiles
print(json.dumps({"calls": i, "seconds": elapsed, "lat": lat[::step]}))
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = _SRC + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _available(system: str) -> str | None:
    import importlib.util

    mod = {"Pyro5": "Pyro5", "RPyC": "rpyc", "gRPC": "grpc"}.get(system)
    if mod and importlib.util.find_spec(mod) is None:
        return f"{mod} is not installed (pip install {'grpcio' if mod == 'grpc' else mod})"
    return None


def _start_server(system: str, address: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-c", SERVERS[system], address], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
    if not sel.select(timeout=30):
        _stop(proc)
        raise RuntimeError(f"the {system} server did not start within 30 s")
    line = proc.stdout.readline().strip()  # type: ignore[union-attr]
    if not line:
        _stop(proc)
        raise RuntimeError(f"the {system} server failed: {proc.stderr.read()[-500:]}")  # type: ignore[union-attr]
    return proc, line


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # lets an interproc server remove its names
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
    try:
        proc.communicate(timeout=10)
    except (subprocess.TimeoutExpired, ValueError):
        pass


def _measure(system: str, address: str, clients: int, seconds: float, ready_within: float = 30.0) -> dict[str, Any]:
    import selectors

    procs = [subprocess.Popen([sys.executable, "-c", CLIENT, system, address, str(seconds)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=_env())
             for _ in range(clients)]
    outs = []
    try:
        # Every client connects and warms up, says so, and is then told one common
        # start time: a bounded wait, and no fixed allowance for slow starts.
        sel = selectors.DefaultSelector()
        for p in procs:
            sel.register(p.stdout, selectors.EVENT_READ, p)  # type: ignore[arg-type]
        waiting, end = set(procs), time.monotonic() + ready_within
        while waiting:
            left = end - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"{len(waiting)} of {clients} {system} clients were not ready within {ready_within:.0f} s")
            for key, _ in sel.select(timeout=left):
                p = key.data
                line = p.stdout.readline()
                sel.unregister(p.stdout)
                if line.strip() != "ready":
                    raise RuntimeError(f"a {system} client failed: {p.stderr.read().strip()[-300:]}")
                waiting.discard(p)
        start_at = time.time() + 0.05
        for p in procs:
            p.stdin.write(f"{start_at}\n")  # type: ignore[union-attr]
            p.stdin.flush()  # type: ignore[union-attr]
        for p in procs:
            out, err = p.communicate(timeout=30 + seconds)
            if p.returncode != 0:
                raise RuntimeError(f"a {system} client failed: {err.strip()[-300:]}")
            outs.append(json.loads(out))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            try:
                p.communicate(timeout=10)
            except (subprocess.TimeoutExpired, ValueError, OSError):
                pass
    from . import percentile

    rate = sum(o["calls"] / o["seconds"] for o in outs)
    lat = [x for o in outs for x in o["lat"]]
    return {"calls_per_s": rate, "p50_us": percentile(lat, 50) / 1000, "p99_us": percentile(lat, 99) / 1000}


def _cases(quick: bool) -> list[tuple[str, str, str]]:
    shm = f"shm://bench.rpc.{os.getpid()}.{time.monotonic_ns()}"
    return [("interproc", "shm://", shm), ("interproc", "tcp://", "tcp://127.0.0.1:0"),
            ("Pyro5", "tcp", ""), ("RPyC", "tcp", ""), ("gRPC", "tcp (HTTP/2)", "")]


#: what ``interproc bench`` shows as its RPC section (the runner keeps these metrics)
SECTION = {
    "title": "RPC: small calls add(i, 1); calls/s summed over the client processes, "
             "per-call latency p50/p99; ratio = calls/s / Pyro5's with as many clients",
    "metrics": ("calls_1cl", "calls_8cl"),
    "ratio_key": "x_pyro5",
}


def run(quick: bool = True, clients: tuple[int, ...] = (1, 8), *, seconds: float | None = None,
        systems: tuple[str, ...] | None = None, budget: float | None = None) -> list[dict[str, Any]]:
    """One row per (system, clients).  ``budget`` (seconds) bounds the whole run: what
    is left when it is used up is a row saying so."""
    seconds = seconds or (0.5 if quick else 3.0)
    end = None if budget is None else time.monotonic() + budget
    rows: list[dict[str, Any]] = []
    for system, over, address in _cases(quick):
        if systems is not None and system not in systems:
            continue
        name = f"rpc {system} {over}"
        why = _available(system)
        if why:
            rows += [{"transport": name, "metric": f"calls_{n}cl", "unit": "calls/s", "status": "skipped",
                      "reason": why, "value": None} for n in clients]
            continue
        if end is not None and end - time.monotonic() < 4 + seconds:
            rows += [{"transport": name, "metric": f"calls_{n}cl", "unit": "calls/s", "status": "skipped",
                      "reason": "not run: the RPC section's time budget was used up", "value": None}
                     for n in clients]
            continue
        try:
            proc, served = _start_server(system, address)
        except RuntimeError as exc:
            rows += [{"transport": name, "metric": f"calls_{n}cl", "unit": "calls/s", "status": "error",
                      "reason": str(exc), "value": None} for n in clients]
            continue
        try:
            for n in clients:
                left = None if end is None else end - time.monotonic()
                if left is not None and left < 2 + seconds:
                    rows.append({"transport": name, "metric": f"calls_{n}cl", "unit": "calls/s",
                                 "status": "skipped", "value": None,
                                 "reason": "not run: the RPC section's time budget was used up"})
                    continue
                try:
                    m = _measure(system, served, n, seconds, ready_within=30.0 if left is None else max(1.0, left - seconds - 1))
                except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
                    rows.append({"transport": name, "metric": f"calls_{n}cl", "unit": "calls/s", "status": "error",
                                 "reason": str(exc), "value": None})
                    continue
                rows.append({"transport": name, "metric": f"calls_{n}cl", "value": round(m["calls_per_s"]),
                             "unit": "calls/s", "p50_us": round(m["p50_us"], 1), "p99_us": round(m["p99_us"], 1),
                             "higher_is_better": True, "status": "ok"})
        finally:
            _stop(proc)
    pyro = {r["metric"]: r["value"] for r in rows if r["transport"].startswith("rpc Pyro5") and r.get("value")}
    for r in rows:
        base = pyro.get(r["metric"])
        if base and r.get("value"):
            r["x_pyro5"] = round(r["value"] / base, 2)
    return rows


def extra_results(options: Any) -> list[dict[str, Any]]:
    """The RPC section of ``interproc bench``, within the case watchdog's time."""
    import signal

    budget = float(getattr(options, "case_timeout", 30))
    watchdog = signal.getitimer(signal.ITIMER_REAL)[0]  # the runner's alarm: what is left of it
    if watchdog > 0:
        budget = min(budget, watchdog)
    budget -= 3  # to stop servers and reap clients before the watchdog fires
    return run(quick=getattr(options, "quick", True), budget=budget)


def table(rows: list[dict[str, Any]]) -> str:
    from . import section_table

    return section_table(SECTION, rows)


if __name__ == "__main__":
    print(table(run(quick="--full" not in sys.argv)))
