"""Sync primitives across two processes: interproc vs multiprocessing vs posix_ipc.

    PYTHONPATH=src python benchmarks/sync_bench.py [--quick] [--json]

Measured, each in the same run for every implementation:

* ``wake_rtt``     — wake round trip: process A wakes B, B wakes A back (µs per
  round trip; median and p99 of single round trips).  interproc: a raw futex
  ping-pong on two words of a SharedMemory segment, and the named
  ``Semaphore``; peers: ``multiprocessing.Semaphore`` and ``posix_ipc.Semaphore``.
* ``lock_uncontended`` — acquire+release of a mutex no one else wants, while a
  second process has it open (ns per pair; median and p99 over batches).
* ``lock_contended``   — two processes acquire+release the same mutex as fast
  as they can (ns per pair, over both processes).

interproc's ``Mutex`` is robust (owner death is detected) and recursive, so it
does a little more work per call than a plain lock; the ratios show the price.
Ratios are value / the interproc value of the same metric (>1: slower than interproc).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
import uuid
from typing import Any, Callable

try:
    import interproc  # noqa: F401
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from interproc import _native
from interproc._bench import machine, summarize
from interproc.shm import SharedMemory
from interproc.sync import Mutex, Semaphore

CTX = multiprocessing.get_context("fork")
_U32 = {"size": 4, "signed": False}


def _name(tag: str) -> str:
    return f"bench.sync.{tag}.{os.getpid()}.{uuid.uuid4().hex[:6]}"


def _result(impl: str, metric: str, values: list[float], unit: str, higher_is_better: bool = False) -> dict:
    median, tail = summarize(values, higher_is_better=higher_is_better)
    return {"transport": impl, "metric": metric, "median": median, "p99": tail, "unit": unit, "samples": len(values)}


def _skipped(impl: str, metric: str, unit: str, reason: str) -> dict:
    return {"transport": impl, "metric": metric, "median": None, "p99": None, "unit": unit, "samples": 0,
            "status": "skipped", "reason": reason}


# -- wake round trip -----------------------------------------------------------

def _futex_child(name: str, n: int) -> None:
    with SharedMemory.open(name) as shm:
        buf = shm.buf
        for i in range(1, n + 1):
            while _native.atomic_load(buf, 0, **_U32) != i:
                _native.futex_wait(buf, 0, i - 1, 5.0)
            _native.atomic_store(buf, 64, i, **_U32)
            _native.futex_wake(buf, 64)


def futex_rtt(n: int) -> list[float]:
    """Raw futex ping-pong: the cost of sleeping and being woken, both ways."""
    name = _name("futex")
    with SharedMemory.create(name, 4096) as shm:
        buf = shm.buf
        child = CTX.Process(target=_futex_child, args=(name, n))
        child.start()
        times = []
        clock = time.perf_counter_ns
        for i in range(1, n + 1):
            t0 = clock()
            _native.atomic_store(buf, 0, i, **_U32)
            _native.futex_wake(buf, 0)
            while _native.atomic_load(buf, 64, **_U32) != i:
                _native.futex_wait(buf, 64, i - 1, 5.0)
            times.append((clock() - t0) / 1000)
        child.join(30)
    return times[min(200, n // 10):]


def _sem_child(open_pair: Callable[[], tuple[Any, Any]], n: int) -> None:
    ping, pong = open_pair()
    for _ in range(n):
        ping.acquire()
        pong.release()


def sem_rtt(open_pair: Callable[[], tuple[Any, Any]], n: int) -> list[float]:
    """Semaphore ping-pong: A releases ping, B takes it and releases pong."""
    ping, pong = open_pair()
    child = CTX.Process(target=_sem_child, args=(open_pair, n))
    child.start()
    times = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        ping.release()
        pong.acquire()
        times.append((clock() - t0) / 1000)
    child.join(30)
    return times[min(200, n // 10):]


# -- mutex cost ------------------------------------------------------------------

def _hold_open(open_lock: Callable[[], Any], ready: Any, done: Any) -> None:
    lock = open_lock()  # noqa: F841 - a second process with the object open
    ready.set()
    done.wait(60)


def lock_uncontended(open_lock: Callable[[], Any], n: int, batches: int) -> list[float]:
    lock = open_lock()
    ready, done = CTX.Event(), CTX.Event()
    child = CTX.Process(target=_hold_open, args=(open_lock, ready, done))
    child.start()
    ready.wait(30)
    acquire, release = lock.acquire, lock.release
    per_op = []
    for _ in range(batches):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            acquire()
            release()
        per_op.append((time.perf_counter_ns() - t0) / n)
    done.set()
    child.join(30)
    return per_op


def _contend(open_lock: Callable[[], Any], n: int, go: Any) -> None:
    lock = open_lock()
    go.wait(30)
    for _ in range(n):
        lock.acquire()
        lock.release()


def lock_contended(open_lock: Callable[[], Any], n: int, batches: int) -> list[float]:
    lock = open_lock()
    per_op = []
    for _ in range(batches):
        go = CTX.Event()
        child = CTX.Process(target=_contend, args=(open_lock, n, go))
        child.start()
        time.sleep(0.05)
        t0 = time.perf_counter_ns()
        go.set()
        for _ in range(n):
            lock.acquire()
            lock.release()
        child.join(60)
        per_op.append((time.perf_counter_ns() - t0) / (2 * n))
    return per_op


# -- the implementations ------------------------------------------------------------

class _Impls:
    """Openers per implementation; each opener gives the same object in every process."""

    def __init__(self) -> None:
        self.sem_names = (_name("ping"), _name("pong"))
        self.mutex_name = _name("mutex")
        self.mp_sems = (CTX.Semaphore(0), CTX.Semaphore(0))
        self.mp_lock = CTX.Lock()
        self.posix = None
        try:
            import posix_ipc

            tag = uuid.uuid4().hex[:8]
            self.posix = posix_ipc
            self.posix_names = (f"/bench_ping_{tag}", f"/bench_pong_{tag}", f"/bench_lock_{tag}")
            for nm, init in zip(self.posix_names, (0, 0, 1)):
                posix_ipc.Semaphore(nm, posix_ipc.O_CREX, initial_value=init)
        except ImportError:
            pass

    def interproc_sems(self) -> tuple[Any, Any]:
        return Semaphore(self.sem_names[0], 0), Semaphore(self.sem_names[1], 0)

    def mp_sem_pair(self) -> tuple[Any, Any]:
        return self.mp_sems

    def posix_sems(self) -> tuple[Any, Any]:
        return self.posix.Semaphore(self.posix_names[0]), self.posix.Semaphore(self.posix_names[1])

    def interproc_mutex(self) -> Any:
        return Mutex(self.mutex_name)

    def mp_lock_open(self) -> Any:
        return self.mp_lock

    def posix_lock(self) -> Any:
        return self.posix.Semaphore(self.posix_names[2])

    def close(self) -> None:
        if self.posix is not None:
            for nm in self.posix_names:
                try:
                    self.posix.unlink_semaphore(nm)
                except self.posix.ExistentialError:
                    pass


def run(quick: bool) -> list[dict]:
    n_rtt = 3000 if quick else 20000
    n_lock, batches = (20000, 5) if quick else (200000, 9)
    n_contended = 20000 if quick else 100000
    impls = _Impls()
    results: list[dict] = []
    keep: list[Any] = []  # interproc objects must stay open across the child's lifetime
    try:
        keep += list(impls.interproc_sems()) + [impls.interproc_mutex()]
        results.append(_result("interproc futex (raw)", "wake_rtt", futex_rtt(n_rtt), "us"))
        results.append(_result("interproc Semaphore", "wake_rtt", sem_rtt(impls.interproc_sems, n_rtt), "us"))
        results.append(_result("multiprocessing.Semaphore", "wake_rtt", sem_rtt(impls.mp_sem_pair, n_rtt), "us"))
        if impls.posix:
            results.append(_result("posix_ipc.Semaphore", "wake_rtt", sem_rtt(impls.posix_sems, n_rtt), "us"))
        else:
            results.append(_skipped("posix_ipc.Semaphore", "wake_rtt", "us", "posix_ipc is not installed"))
        for metric, fn, n in (("lock_uncontended", lock_uncontended, n_lock),
                              ("lock_contended", lock_contended, n_contended)):
            results.append(_result("interproc Mutex", metric, fn(impls.interproc_mutex, n, batches if fn is lock_uncontended else 3), "ns"))
            results.append(_result("multiprocessing.Lock", metric, fn(impls.mp_lock_open, n, batches if fn is lock_uncontended else 3), "ns"))
            if impls.posix:
                results.append(_result("posix_ipc.Semaphore", metric, fn(impls.posix_lock, n, batches if fn is lock_uncontended else 3), "ns"))
            else:
                results.append(_skipped("posix_ipc.Semaphore", metric, "ns", "posix_ipc is not installed"))
    finally:
        for obj in keep:
            obj.close()
        impls.close()
    refs = {"wake_rtt": "interproc futex (raw)", "lock_uncontended": "interproc Mutex", "lock_contended": "interproc Mutex"}
    base = {r["metric"]: r["median"] for r in results if r["transport"] == refs[r["metric"]]}
    for r in results:
        r.setdefault("status", "ok")
        r["ratio_to"] = refs[r["metric"]]
        r["ratio"] = r["median"] / base[r["metric"]] if r["median"] else None
    return results


def table(results: list[dict]) -> str:
    lines = [f"{'METRIC':<17} {'IMPLEMENTATION':<27} {'MEDIAN':>10} {'P99':>10}  UNIT  RATIO (value / interproc)"]
    for r in results:
        if r["median"] is None:
            lines.append(f"{r['metric']:<17} {r['transport']:<27} skipped: {r['reason']}")
            continue
        lines.append(f"{r['metric']:<17} {r['transport']:<27} {r['median']:>10.2f} {r['p99']:>10.2f}  {r['unit']:<4}  "
                     f"x{r['ratio']:.2f} vs {r['ratio_to']}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = run(args.quick)
    if args.json:
        print(json.dumps({"machine": machine(), "results": results}, indent=2))
    else:
        m = machine()
        print(f"sync bench on {m['cpus']} CPUs, {m['cpu']}, {m['system']}, Python {m['python']}\n")
        print(table(results))


if __name__ == "__main__":
    main()
