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


def _ratio_text(r: float | None) -> str:
    return "-" if r is None else f"x{r:.2f}" if r < 100 else f"x{r:,.0f}"


def section_table(section: dict[str, Any], results: list[dict[str, Any]]) -> str:
    """A module's own section: one line per system, per metric value / p50 / p99 / ratio."""
    metrics = list(section["metrics"])
    head = ["SYSTEM"]
    for m in metrics:
        head += [m, "p50 µs", "p99 µs", "ratio"]
    lines: list[list[str]] = [head]
    by: dict[str, dict[str, dict[str, Any]]] = {}
    for r in results:
        by.setdefault(r["transport"], {})[r["metric"]] = r
    notes = []
    for name, got in by.items():
        reasons = {r.get("reason") for r in got.values() if r.get("status", "ok") != "ok"}
        if reasons and all(r.get("status", "ok") != "ok" for r in got.values()) and len(reasons) == 1:
            first = next(iter(got.values()))
            lines.append([name, f"{first['status']}: {first['reason']}"])
            continue
        cells = [name]
        for m in metrics:
            row = got.get(m)
            if row is None or row.get("status", "ok") != "ok":
                cells += ["-" if row is None else row["status"], "", "", ""]
                if row is not None and row.get("reason"):
                    notes.append(f"{name} {m}: {row['reason']}")
                continue
            value = row.get("value", row.get("median"))
            p50, p99 = row.get("p50_us"), row.get("p99_us")  # a throughput (fan-out) has none
            cells += [f"{value:,.0f}", "-" if p50 is None else f"{p50:.1f}", "-" if p99 is None else f"{p99:.1f}",
                      _ratio_text(row.get(section.get("ratio_key", "ratio")))]
        lines.append(cells)
    widths = [max(len(l[i]) for l in lines if len(l) == len(head)) for i in range(len(head))]
    out = [section["title"], ""]
    for l in lines:
        if len(l) == len(head):
            out.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(l, widths))))
        else:
            out.append(f"{l[0].ljust(widths[0])}  {l[1]}")
    out += [f"error: {n}" for n in notes]
    return "\n".join(out)
