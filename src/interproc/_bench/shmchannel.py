"""Benchmarks of the shm:// channel and its baselines, between two real processes.

Every function returns a list of result dicts::

    {"transport": "shm://", "metric": "rtt_64B_median", "value": 0.8, "unit": "us",
     "policy": "hybrid", ...}

Baselines: a C shared-memory ring (memcpy in and out), C spin and futex
ping-pongs (compiled with the system C compiler from ``benchmarks/c/``; skipped
when there is no compiler or no source tree), and a pure-Python busy-poll over
``multiprocessing.shared_memory``.  Nothing here asserts: numbers are reported.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import interproc

_SRC = str(Path(interproc.__file__).resolve().parents[1])
C_DIR = Path(interproc.__file__).resolve().parents[2] / "benchmarks" / "c"
POLICIES = ("hybrid", "spin", "sleep")
MiB = 1 << 20


def _result(transport: str, metric: str, value: float, unit: str, **extra: Any) -> dict:
    return {"transport": transport, "metric": metric, "value": round(value, 4), "unit": unit, **extra}


def _cpus() -> tuple[int, int] | None:
    """With INTERPROC_BENCH_PIN=1: two CPUs to pin the parent and the peer to,
    so that every transport is measured across two cores.  Off by default:
    on a machine shared with other work, a pinned busy-poller can wait a whole
    time slice for its CPU (the pure-Python baseline went from 1 us to 24 ms)."""
    if not os.environ.get("INTERPROC_BENCH_PIN") or not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else None


class _Pinned:
    """Pin this process to the first CPU for the duration of a measurement."""

    def __enter__(self) -> None:
        self.saved = os.sched_getaffinity(0) if _cpus() else None
        if self.saved:
            os.sched_setaffinity(0, {_cpus()[0]})

    def __exit__(self, *exc: object) -> None:
        if self.saved:
            os.sched_setaffinity(0, self.saved)


def _spawn(code: str, *args: str) -> subprocess.Popen:
    pair = _cpus()
    if pair:
        code = f"import os; os.sched_setaffinity(0, {{{pair[1]}}})\n" + code
    env = dict(os.environ)
    env["PYTHONPATH"] = _SRC + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 120) -> str:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark peer failed ({proc.returncode}): {err.strip()[-800:]}")
    return out


def _pinned(fn):
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with _Pinned():
            return fn(*args, **kwargs)
    return wrapper


def _name() -> str:
    return f"bench.{os.getpid()}.{uuid.uuid4().hex[:8]}"


# -- the peer process ---------------------------------------------------------------

_PEER = r"""
import sys, time, interproc
mode, addr, n, size, policy = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
ch = interproc.connect(addr, timeout=10, policy=policy)
if mode == "echo":
    recv, send = ch.recv, ch.send
    for _ in range(n):
        send(recv())
elif mode == "source":
    msg = bytes(size)
    send = ch.send
    ch.recv()  # go
    for _ in range(n):
        send(msg)
    ch.recv()  # done
elif mode == "idle":
    ch.send(b"ready")
    t0 = time.process_time()
    try:
        ch.recv(timeout=n / 1000)
    except interproc.Timeout:
        pass
    print(time.process_time() - t0)
ch.close()
"""


def _serve(mode: str, n: int, size: int, policy: str, capacity: int | None = None):
    name = _name()
    opts = {"policy": policy}
    if capacity:
        opts["capacity"] = capacity
    lst = interproc.listen(f"shm://{name}", **opts)
    proc = _spawn(_PEER, mode, f"shm://{name}" + (f"?capacity={capacity}" if capacity else ""),
                  str(n), str(size), policy)
    try:
        ch = lst.accept(timeout=30)
    except BaseException:
        proc.kill()
        proc.wait()
        lst.close()
        raise
    return lst, ch, proc


@_pinned
def shm_rtt(policy: str = "hybrid", n: int = 20000, size: int = 64) -> list[dict]:
    """Round trip of a `size`-byte message: median and p99 in microseconds."""
    warm = min(2000, n // 5)
    lst, ch, proc = _serve("echo", n + warm, size, policy)
    try:
        msg = bytes(size)
        send, recv, clock = ch.send, ch.recv, time.perf_counter_ns
        samples = []
        for i in range(n + warm):
            t0 = clock()
            send(msg)
            recv()
            samples.append(clock() - t0)
        _finish(proc)
    finally:
        ch.close()
        lst.close()
    samples = sorted(samples[warm:])
    med = statistics.median(samples) / 1000
    p99 = samples[int(len(samples) * 0.99)] / 1000
    return [_result("shm://", f"rtt_{size}B_median", med, "us", policy=policy),
            _result("shm://", f"rtt_{size}B_p99", p99, "us", policy=policy)]


@_pinned
def shm_oneway(policy: str = "hybrid", n: int = 500000, size: int = 64, into: bool = True,
               capacity: int | None = None) -> list[dict]:
    """One-way stream of `n` messages of `size` bytes: messages/s and MiB/s."""
    lst, ch, proc = _serve("source", n, size, policy, capacity)
    try:
        buf = bytearray(size)
        ch.send(b"go")
        t0 = time.perf_counter()
        if into:
            recv_into = ch.recv_into
            for _ in range(n):
                recv_into(buf)
        else:
            recv = ch.recv
            for _ in range(n):
                recv()
        dt = time.perf_counter() - t0
        ch.send(b"done")
        _finish(proc)
    finally:
        ch.close()
        lst.close()
    how = "recv_into" if into else "recv"
    return [_result("shm://", f"oneway_{size}B_msgs", n / dt, "msg/s", policy=policy, recv=how),
            _result("shm://", f"oneway_{size}B_throughput", n * size / dt / MiB, "MiB/s",
                    policy=policy, recv=how)]


@_pinned
def shm_idle_cpu(policy: str = "hybrid", seconds: float = 2.0) -> list[dict]:
    """CPU time a receiver burns while waiting `seconds` for a message that never comes."""
    lst, ch, proc = _serve("idle", int(seconds * 1000), 0, policy)
    try:
        ch.recv(timeout=30)
        out = _finish(proc, timeout=seconds + 30)
    finally:
        ch.close()
        lst.close()
    cpu = float(out.strip().splitlines()[-1])
    return [_result("shm://", "idle_receiver_cpu", cpu * 1000, "ms", policy=policy, seconds=seconds)]


# -- pure-Python busy-poll baseline ----------------------------------------------

_PYPOLL = r"""
import sys
from multiprocessing import shared_memory, resource_tracker
name, n = sys.argv[1], int(sys.argv[2])
shm = shared_memory.SharedMemory(name)
resource_tracker.unregister(shm._name, "shared_memory")  # the parent owns it
buf = shm.buf
# byte 0: ping counter (parent writes), byte 64: pong counter (child writes)
import os, time
parent, stall = os.getppid(), float(sys.argv[3])
for i in range(1, n + 1):
    want = i & 0xFF
    spins = 0
    give_up = None
    while buf[0] != want:
        spins += 1
        if not spins & 0xFFFF:  # every spin loop is bounded: a parent that stopped asking is gone
            give_up = give_up or time.monotonic() + stall
            if os.getppid() != parent or time.monotonic() > give_up:
                sys.exit("the benchmark parent stopped")
    buf[65:129] = buf[1:65]
    buf[64] = want
del buf
shm.close()
"""


class Stalled(RuntimeError):
    """The peer of a busy-poll measurement stopped answering within the budget."""


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()


@_pinned
def pypoll_rtt(n: int = 20000, budget: float = 10.0, peer: str | None = None) -> list[dict]:
    """64 B round trip with two Python processes busy-polling a shared_memory block.

    Every spin is bounded by ``budget``: a peer that stops answering is
    reported (``Stalled``), it never hangs the run.  ``peer`` replaces the
    peer program (tests use one that never answers)."""
    from multiprocessing import shared_memory

    shm = shared_memory.SharedMemory(create=True, size=4096)
    try:
        proc = _spawn(peer or _PYPOLL, shm.name, str(n), str(budget))
        buf = shm.buf
        msg = bytes(64)
        clock, now = time.perf_counter_ns, time.monotonic
        samples = []
        stop = now() + budget
        try:
            for i in range(1, n + 1):
                want = i & 0xFF
                t0 = clock()
                buf[1:65] = msg
                buf[0] = want
                spins = 0
                while buf[64] != want:
                    spins += 1
                    if not spins & 0xFFFF and now() > stop + budget:
                        raise Stalled(f"the busy-poll peer did not answer round trip {i} within {budget:.0f} s")
                bytes(buf[65:129])
                samples.append(clock() - t0)
                if not i & 255 and now() > stop:
                    break  # two pure spinners sharing a CPU: a time slice per round trip
            if len(samples) == n:
                _finish(proc)
        finally:
            del buf
            _stop(proc)
    finally:
        shm.close()
        shm.unlink()
    samples = sorted(samples[len(samples) // 10:])
    return [_result("python busy-poll (multiprocessing.shared_memory)", "rtt_64B_median",
                    statistics.median(samples) / 1000, "us"),
            _result("python busy-poll (multiprocessing.shared_memory)", "rtt_64B_p99",
                    samples[int(len(samples) * 0.99)] / 1000, "us")]


_PYPOLL_SRC = r"""
import sys
from multiprocessing import shared_memory, resource_tracker
name, n = sys.argv[1], int(sys.argv[2])
shm = shared_memory.SharedMemory(name)
resource_tracker.unregister(shm._name, "shared_memory")
idx = shm.buf.cast("Q")   # idx[0] head (producer), idx[8] tail (consumer)
slots = shm.buf[128:]
msg = bytes(64)
import os, time
parent, stall = os.getppid(), float(sys.argv[3])
give_up = time.monotonic() + stall
head = 0
while idx[8] != 1:        # the consumer says go
    if time.monotonic() > give_up:
        sys.exit("the benchmark parent never started")
for _ in range(n):
    spins = 0
    give_up = None
    while head - idx[8] + 1 >= 1024:  # full (tail counts from 1)
        spins += 1
        if not spins & 0xFFFF:
            give_up = give_up or time.monotonic() + stall
            if os.getppid() != parent or time.monotonic() > give_up:
                sys.exit("the benchmark parent stopped")
    off = (head % 1024) * 64
    slots[off:off + 64] = msg
    head += 1
    idx[0] = head
del idx, slots
shm.close()
"""


@_pinned
def pypoll_oneway(n: int = 300000, budget: float = 10.0, peer: str | None = None) -> list[dict]:
    """64 B one-way through a slot ring in multiprocessing.shared_memory, busy-polling
    (every spin bounded by ``budget``, as in :func:`pypoll_rtt`)."""
    from multiprocessing import shared_memory

    shm = shared_memory.SharedMemory(create=True, size=128 + 1024 * 64)
    try:
        proc = _spawn(peer or _PYPOLL_SRC, shm.name, str(n), str(budget))
        idx = shm.buf.cast("Q")
        slots = shm.buf[128:]
        try:
            idx[8] = 1
            tail = 0
            t0 = time.perf_counter()
            now = time.monotonic
            stop = now() + budget
            while tail < n:
                spins = 0
                while idx[0] == tail:
                    spins += 1
                    if not spins & 0xFFFF and now() > stop + budget:
                        raise Stalled(f"the busy-poll peer sent nothing after message {tail} "
                                      f"within {budget:.0f} s")
                off = (tail % 1024) * 64
                bytes(slots[off:off + 64])
                tail += 1
                idx[8] = tail + 1
                if not tail & 4095 and time.monotonic() > stop:
                    break
            dt = time.perf_counter() - t0
            if tail == n:
                _finish(proc)
        finally:
            del idx, slots
            _stop(proc)
    finally:
        shm.close()
        shm.unlink()
    return [_result("python busy-poll (multiprocessing.shared_memory)", "oneway_64B_msgs", tail / dt, "msg/s")]


# -- C baselines --------------------------------------------------------------------

def _compile() -> Path | None:
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    src = C_DIR / "shm_baselines.c"
    if cc is None or not src.exists():
        return None
    out = Path(tempfile.gettempdir()) / f"interproc-shm-baselines-{os.getuid()}"
    if not out.exists() or out.stat().st_mtime < src.stat().st_mtime:
        tmp = out.with_suffix(f".{os.getpid()}")
        subprocess.run([cc, "-O2", "-o", str(tmp), str(src)], check=True, capture_output=True)
        os.replace(tmp, out)
    return out


def c_baselines(quick: bool = False, limit: float = 120) -> list[dict]:
    """C spin / futex ping-pong (64 B) and a C ring moving 1 MiB messages."""
    try:
        exe = _compile()
    except subprocess.CalledProcessError as exc:
        return [{"transport": "C baselines", "skipped": f"compile failed: {exc.stderr[-300:]!r}"}]
    if exe is None:
        return [{"transport": "C baselines", "skipped": "no C compiler or no benchmarks/c sources"}]
    runs = [["spin", "200000" if not quick else "50000"],
            ["futex", "20000" if not quick else "5000"],
            ["ring", str(MiB), "2000" if not quick else "500", str(4 * MiB)]]
    results = []
    for args in runs:
        env = dict(os.environ, LIMIT_S=str(max(1, int(limit))))  # the C side's own watchdog
        if _cpus():
            env["PIN_CPUS"] = "%d,%d" % _cpus()
        out = subprocess.run([str(exe), *args], check=True, capture_output=True, text=True,
                             timeout=limit + 5, env=env).stdout
        for line in out.splitlines():
            if line.startswith("{"):
                results.append(json.loads(line))
    return results


# -- rows for the one table of `interproc bench` ----------------------------------------

def _row(transport: str, metric: str, median: float, p99: float | None = None, **extra: Any) -> dict:
    return {"transport": transport, "metric": metric, "median": median, "p99": p99, "status": "ok",
            "samples": 1, "group": "baseline", **extra}


#: The rows extra_results adds (``interproc bench --only`` matches these names).
BASELINES = ("C spin ping-pong", "C futex ping-pong", "C shm ring (memcpy in/out)",
             "python busy-poll (multiprocessing.shared_memory)")


def extra_results(options: Any) -> list[dict]:
    """Baselines for ``interproc bench``'s table, in its metrics and units:
    C spin and futex ping-pongs (``rtt_64B``, µs), a C ring moving 1 MiB
    messages with a memcpy in and out (``bulk_1MiB``, MiB/s), and a pure-Python
    busy-poll over ``multiprocessing.shared_memory`` (``rtt_64B``,
    ``oneway_64B``).  interproc's own transports are in the table already,
    measured by the runner, so they are not measured again here."""
    quick = bool(getattr(options, "quick", False))
    budget = 2.0 if quick else 10.0
    rows: list[dict] = []
    try:
        raw = c_baselines(quick, limit=20 if quick else 120)
    except Exception as exc:  # noqa: BLE001 - reported as a row, never fatal
        raw = [{"transport": "C baselines", "skipped": f"{type(exc).__name__}: {exc}"}]
    by: dict[tuple[str, str], float] = {(r["transport"], r["metric"]): r["value"] for r in raw if "value" in r}
    for r in raw:
        if "skipped" in r:
            rows.append({"transport": r["transport"], "metric": "-", "status": "skipped", "reason": r["skipped"],
                         "group": "baseline"})
    for name in ("C spin ping-pong", "C futex ping-pong"):
        if (name, "rtt_64B_median") in by:
            rows.append(_row(name, "rtt_64B", by[(name, "rtt_64B_median")], by.get((name, "rtt_64B_p99"))))
    ring = "C shm ring (memcpy in/out)"
    if (ring, f"oneway_{MiB}B_throughput") in by:
        rows.append(_row(ring, "bulk_1MiB", by[(ring, f"oneway_{MiB}B_throughput")]))
    pypoll = "python busy-poll (multiprocessing.shared_memory)"
    for metric, step in (("rtt_64B", lambda: pypoll_rtt(3000 if quick else 10000, budget=budget)),
                         ("oneway_64B", lambda: pypoll_oneway(50000 if quick else 125000, budget=budget))):
        try:
            got = {r["metric"]: r["value"] for r in step()}
        except Exception as exc:  # noqa: BLE001 - a stalled peer is a failed row
            rows.append({"transport": pypoll, "metric": metric, "status": "error", "group": "baseline",
                         "reason": f"{type(exc).__name__}: {exc}"})
            continue
        if metric == "rtt_64B":
            rows.append(_row(pypoll, metric, got["rtt_64B_median"], got["rtt_64B_p99"]))
        else:
            rows.append(_row(pypoll, metric, got["oneway_64B_msgs"]))
    return rows


def run_all(quick: bool = False, progress: bool = False) -> list[dict]:
    """Everything, as a flat list of result dicts (what ``interproc bench`` shows)."""
    n_rtt = 3000 if quick else 10000
    n_small = 200000 if quick else 500000
    n_big = 300 if quick else 1000
    steps = []
    for policy in POLICIES:
        steps.append(lambda p=policy: shm_rtt(p, n=n_rtt if p != "sleep" else n_rtt // 4))
    budget = 2.0 if quick else 10.0
    steps.append(lambda: pypoll_rtt(n_rtt, budget=budget))
    steps.append(lambda: c_baselines(quick))
    for policy in POLICIES:
        steps.append(lambda p=policy: shm_oneway(p, n=n_small, size=64, into=False))
    steps.append(lambda: pypoll_oneway(n_small // 4, budget=budget))
    for policy in POLICIES:
        steps.append(lambda p=policy: shm_oneway(p, n=n_big, size=MiB, into=True, capacity=4 * MiB))
    steps.append(lambda: shm_oneway("hybrid", n=n_big, size=MiB, into=False, capacity=4 * MiB))
    for policy in POLICIES:
        steps.append(lambda p=policy: shm_idle_cpu(p, 1.0 if quick else 2.0))
    results: list[dict] = []
    for step in steps:
        got = step()
        if progress:
            for r in got:
                print("  ..", json.dumps(r), file=sys.stderr, flush=True)
        results += got
    return results


def main() -> None:
    quick = "--quick" in sys.argv
    for r in run_all(quick):
        print(json.dumps(r))


if __name__ == "__main__":
    main()
