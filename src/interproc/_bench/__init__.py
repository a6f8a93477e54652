"""Benchmark machinery behind ``interproc bench`` and ``benchmarks/*.py``.

* :mod:`.peers` — one adapter per transport or peer library, all with the
  same shape (an endpoint that can ``send(msg)`` and ``recv(size)``), set up
  between this process and a forked child.
* :mod:`.runner` — runs the metrics (64 B round trip, 64 B one-way msgs/s,
  1 MiB one-way MiB/s) for every adapter, builds result dicts, the table,
  the ratios, JSON and the optional plot.

An optional module ``interproc._bench.shmchannel`` (written with the shm://
channel) may add cases: a list ``EXTRA_PEERS`` of :class:`peers.Peer`
objects and/or a function ``extra_results(options) -> list[dict]``.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
from typing import Any, Callable, Iterable


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by nearest rank; values need not be sorted."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[k]


def summarize(values: Iterable[float], *, higher_is_better: bool) -> tuple[float, float]:
    """(median, p99): for throughputs the "p99" is the slow tail (the 1st percentile)."""
    vals = list(values)
    median = statistics.median(vals)
    tail = percentile(vals, 1 if higher_is_better else 99)
    return median, tail


def fork_peer(child: Callable[..., Any], *args: Any) -> int:
    """Run ``child(*args)`` in a forked process; it exits 1 (with a traceback) if it raises."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked peer
        code = 0
        try:
            child(*args)
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    return pid


def reap_peer(pid: int, what: str) -> None:
    """Wait for a forked peer; RuntimeError if it failed."""
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"the {what} peer failed")


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
    }
