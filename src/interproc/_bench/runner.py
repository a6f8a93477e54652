"""Run every peer between two real processes; results, ratios, table, plot.

Each case forks one child (the echo/sink side) and talks to it over a
control pipe that is never timed.  Metrics:

* ``rtt_64B``    — 64 B round trip: median and p99 of single round trips, µs;
* ``oneway_64B`` — 64 B one way: batches of messages, msgs/s per batch;
* ``bulk_1MiB``  — 1 MiB one way: batches, MiB/s per batch.

For throughputs the reported ``p99`` is the slow tail (the slowest 1 % of
batches, i.e. the 1st percentile of the rates).
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass
from typing import Any, Iterator

from . import machine, section_table, summarize
from .peers import Peer, builtin_peers

MIB = 1 << 20
SENTINEL_BYTE = 0xFF


@dataclass(frozen=True)
class Metric:
    key: str
    size: int
    unit: str
    higher_is_better: bool
    title: str


METRICS = (
    Metric("rtt_64B", 64, "µs", False, "64 B round trip"),
    Metric("oneway_64B", 64, "msg/s", True, "64 B one-way"),
    Metric("bulk_1MiB", MIB, "MiB/s", True, "1 MiB one-way"),
)


@dataclass
class Options:
    quick: bool = False
    iterations: int | None = None  # fixed counts (for tests); no time budgets
    only: str | None = None
    pin: bool = True  # measuring side on one CPU, peer on another
    extras: bool = True  # also run the other benchmark modules of this package

    def cpus(self) -> tuple[int, int] | None:
        """Two CPUs for the two sides, or None (pinning off or impossible)."""
        if not self.pin or os.environ.get("INTERPROC_BENCH_NOPIN") or not hasattr(os, "sched_getaffinity"):
            return None
        cpus = sorted(os.sched_getaffinity(0))
        return (cpus[0], cpus[1]) if len(cpus) >= 2 else None

    @property
    def rtt_budget(self) -> float:
        return 0.2 if self.quick else 2.0

    @property
    def batch_seconds(self) -> float:
        return 0.06 if self.quick else 0.3

    @property
    def batches(self) -> int:
        return 2 if self.iterations else (3 if self.quick else 7)

    @property
    def case_timeout(self) -> int:
        return 30 if self.quick or self.iterations else 240

    @property
    def run_budget(self) -> float | None:
        """Seconds for the whole run: cases still waiting when it is used up are
        reported as skipped, so ``--quick`` ends in about a minute however
        loaded the machine is.  None (no budget) with fixed iterations."""
        if self.iterations:
            return None
        return 60.0 if self.quick else 900.0


class _Budget:
    """What is left of the run's time budget."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.end = None if seconds is None else time.monotonic() + seconds

    def left(self) -> float | None:
        return None if self.end is None else self.end - time.monotonic()

    def alarm(self, cap: int) -> int:
        """Seconds for the next case's watchdog: at most ``cap``, at least 1."""
        left = self.left()
        return cap if left is None else max(1, min(cap, int(left + 0.999)))

    def used_up(self) -> str | None:
        left = self.left()
        if left is not None and left <= 0:
            return f"not run: the run's time budget ({self.seconds:.0f} s) was used up"
        return None


class CaseTimeout(Exception):
    pass


@contextlib.contextmanager
def _alarm(seconds: int) -> Iterator[None]:
    """Interrupt a case that hangs (a transport bug must not hang the bench)."""

    def fire(signum: int, frame: Any) -> None:
        raise CaseTimeout(f"timed out after {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# -- the child side ----------------------------------------------------------------

def _child_main(peer: Peer, state: Any, ctl: Any, cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    peer.child_init(state)
    ep = None
    while True:
        try:
            cmd = ctl.recv()
        except (EOFError, OSError):
            return
        op = cmd[0]
        try:
            if op == "setup":
                _, size, pre = cmd
                info, finish = peer.serve(state, size, pre)
                ctl.send(("ok", info))
                ep = finish()
                ctl.send(("ready", None))
            elif op == "rtt":
                size = cmd[1]
                recv, send = ep.recv, ep.send
                while True:
                    m = recv(size)
                    if m[0] == SENTINEL_BYTE:
                        break
                    send(m)
            elif op == "oneway":
                _, n, size = cmd
                recv = ep.recv
                for _ in range(n):
                    recv(size)
                ctl.send(("done", None))
            elif op == "teardown":
                if ep is not None:
                    ep.close()
                ep = None
                ctl.send(("closed", None))
            elif op == "exit":
                return
        except Exception as exc:  # reported to the parent, which records it
            try:
                ctl.send(("error", f"{type(exc).__name__}: {exc}"))
            except OSError:
                return


# -- the measuring side ---------------------------------------------------------------

def _expect(ctl: Any, what: str) -> Any:
    status, payload = ctl.recv()
    if status == "error":
        raise RuntimeError(f"peer process: {payload}")
    if status != what:
        raise RuntimeError(f"peer process answered {status!r}, expected {what!r}")
    return payload


def _measure_rtt(ep: Any, ctl: Any, opts: Options) -> list[float]:
    size = 64
    msg = b"\x00" * size
    send, recv = ep.send, ep.recv
    ctl.send(("rtt", size))
    for _ in range(min(200, opts.iterations or 200)):
        send(msg)
        recv(size)
    times: list[float] = []
    n = opts.iterations or 10_000_000
    clock = time.perf_counter_ns
    stop = clock() + int(opts.rtt_budget * 1e9)
    for _ in range(n):
        t0 = clock()
        send(msg)
        recv(size)
        t1 = clock()
        times.append((t1 - t0) / 1000)
        if not opts.iterations and t1 > stop:
            break
    send(bytes([SENTINEL_BYTE]) * size)
    return times


def _measure_oneway(ep: Any, ctl: Any, size: int, opts: Options) -> list[float]:
    msg = b"\x01" * size
    send = ep.send
    if opts.iterations:
        n = opts.iterations if size <= 4096 else max(1, opts.iterations // 16)
    else:
        n = 100 if size <= 4096 else 4
    rates: list[float] = []
    probe = not opts.iterations
    for _ in range(opts.batches + probe):
        ctl.send(("oneway", n, size))
        t0 = time.perf_counter()
        for _ in range(n):
            send(msg)
        _expect(ctl, "done")
        dt = time.perf_counter() - t0
        rate = n / dt
        if probe:  # the first batch only sizes the others
            probe = False
            n = max(4 if size > 4096 else 100, min(2_000_000, int(rate * opts.batch_seconds)))
            continue
        rates.append(rate * size / MIB if size > 4096 else rate)
    return rates


def _entry(peer: Peer, metric: Metric, **kw: Any) -> dict[str, Any]:
    base = {"transport": peer.name, "group": peer.group, "metric": metric.key, "title": metric.title,
            "median": None, "p99": None, "unit": metric.unit, "samples": 0, "status": "ok", "reason": None}
    base.update(kw)
    return base


def run_case(peer: Peer, opts: Options, watchdog: int | None = None) -> list[dict[str, Any]]:
    reason = peer.available()
    if reason:
        return [_entry(peer, m, status="skipped", reason=reason) for m in METRICS]
    ctx = multiprocessing.get_context("fork")
    results: list[dict[str, Any]] = []
    try:
        state = peer.prepare()
    except Exception as exc:
        return [_entry(peer, m, status="error", reason=f"setup failed: {type(exc).__name__}: {exc}") for m in METRICS]
    ctl, child_ctl = ctx.Pipe()
    cpus = opts.cpus()
    proc = ctx.Process(target=_child_main, args=(peer, state, child_ctl, cpus and cpus[1]), daemon=True)
    saved = os.sched_getaffinity(0) if cpus else None
    if cpus:
        # Two CPUs, one per side, as the C baselines are measured: otherwise
        # the scheduler often stacks both on one CPU and every spin or poll
        # then costs the other side its time slice.
        os.sched_setaffinity(0, {cpus[0]})
    try:
        with _alarm(watchdog or opts.case_timeout):
            proc.start()
            child_ctl.close()
            peer.child_started(state)
            for metric in METRICS:
                if proc.exitcode is not None:
                    results.append(_entry(peer, metric, status="error", reason="peer process died"))
                    continue
                try:
                    results.append(_run_metric(peer, state, ctl, metric, opts))
                except CaseTimeout:
                    raise
                except Exception as exc:
                    results.append(_entry(peer, metric, status="error", reason=f"{type(exc).__name__}: {exc}"))
                    break  # the pair may be in an unknown state: stop this case
            ctl.send(("exit",))
    except CaseTimeout as exc:
        results.append(_entry(peer, METRICS[len(results)], status="error", reason=str(exc)))
    finally:
        if saved:
            os.sched_setaffinity(0, saved)
        proc.join(2)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
        ctl.close()
    done = {r["metric"] for r in results}
    for metric in METRICS:
        if metric.key not in done:
            results.append(_entry(peer, metric, status="error", reason="not run: an earlier metric failed"))
    return results


def _run_metric(peer: Peer, state: Any, ctl: Any, metric: Metric, opts: Options) -> dict[str, Any]:
    pre = peer.parent_pre(state, metric.size)
    ep = None
    try:
        ctl.send(("setup", metric.size, peer.parent_pre_info(pre)))
        info = _expect(ctl, "ok")
        ep = peer.connect(state, metric.size, info, pre)
        pre = None  # owned by the endpoint now
        _expect(ctl, "ready")
        if metric.key.startswith("rtt"):
            values = _measure_rtt(ep, ctl, opts)
        else:
            values = _measure_oneway(ep, ctl, metric.size, opts)
        ctl.send(("teardown",))
        _expect(ctl, "closed")
    finally:
        if ep is not None:
            ep.close()
        if pre is not None and hasattr(pre, "close"):
            pre.close()
    median, tail = summarize(values, higher_is_better=metric.higher_is_better)
    return _entry(peer, metric, median=median, p99=tail, samples=len(values))


# -- the whole run ---------------------------------------------------------------------

#: modules of this package that are the runner itself, not extra benchmarks
_OWN = {"peers", "runner"}


def extra_modules() -> list[tuple[str, Any, str | None]]:
    """Other ``interproc._bench`` modules: (name, module or None, import error)."""
    import pkgutil

    from .. import _bench

    found = []
    for info in sorted(pkgutil.iter_modules(_bench.__path__), key=lambda m: m.name):
        if info.name in _OWN or info.name.startswith("_"):
            continue
        try:
            found.append((info.name, importlib.import_module(f"{_bench.__name__}.{info.name}"), None))
        except ImportError as exc:
            found.append((info.name, None, str(exc)))
    return found


def all_peers() -> tuple[list[Peer], list[tuple[str, Any, str | None]]]:
    peers = builtin_peers()
    extras = extra_modules()
    for _, mod, _ in extras:
        peers.extend(getattr(mod, "EXTRA_PEERS", []) if mod is not None else [])
    return peers, extras


def _extra_results(name: str, mod: Any, error: str | None, opts: Options,
                   budget: _Budget | None = None) -> list[dict[str, Any]]:
    """Rows that another benchmark module adds to the one table.

    Only modules with ``extra_results(options)`` take part: it returns rows in
    the table's own metrics (``rtt_64B`` in µs, ``oneway_64B`` in msg/s,
    ``bulk_1MiB`` in MiB/s) for baselines the table does not already have.
    Modules that re-measure the table's transports their own way (with other
    names and other numbers) are for ``benchmarks/*.py``, not for this table.
    """
    if mod is None:
        return [_adopt({"transport": name, "metric": "-", "status": "error",
                        "reason": f"import failed: {error}"}, name)]
    if not hasattr(mod, "extra_results"):
        return []
    budget = budget or _Budget(None)
    used_up = budget.used_up()
    if used_up:
        return [_adopt({"transport": name, "metric": "-", "status": "skipped", "reason": used_up}, name)]
    try:
        with _alarm(budget.alarm(opts.case_timeout)):
            raw = mod.extra_results(opts)
    except Exception as exc:  # one broken or stalled module must not sink the run
        return [_adopt({"transport": name, "metric": "-", "status": "error",
                        "reason": f"{type(exc).__name__}: {exc}"}, name)]
    # A module with a SECTION (its own metrics and units, e.g. RPC calls/s) gets
    # its rows shown as a section under the table, not as rows of it.
    section = getattr(mod, "SECTION", None)
    keys = set(section["metrics"]) if section else set()
    out = []
    for r in raw:
        if section and (r.get("metric") in keys
                        or (r.get("status", "ok") != "ok" and r.get("metric") not in _METRIC_KEYS)):
            out.append(_adopt({**r, "section": name}, name))
        elif r.get("metric") in _METRIC_KEYS or r.get("status", "ok") != "ok":
            out.append(_adopt(r, name))
    return out


_METRIC_KEYS = {m.key for m in METRICS}
_UNITS = {m.key: m.unit for m in METRICS}


def _adopt(r: dict[str, Any], source: str) -> dict[str, Any]:
    """A result from an extra module, in this runner's shape."""
    out = dict(r)
    out["source"] = source
    out.setdefault("group", "baseline")
    out.setdefault("median", r.get("value"))
    out.setdefault("p99", None)
    out.setdefault("status", "ok")
    out.setdefault("reason", None)
    out["unit"] = _UNITS.get(out["metric"], out.get("unit", ""))
    out.setdefault("title", next((m.title for m in METRICS if m.key == out["metric"]), out["metric"]))
    return out


def add_ratios(results: list[dict[str, Any]]) -> tuple[str | None, str]:
    """Set ``ratio`` = value / reference value on every measured result."""
    measured = [r for r in results if r["status"] == "ok" and r["median"]]
    names = [r["transport"] for r in measured if r["group"] == "interproc"]
    if "shm://" in names:
        ref, note = "shm://", "ratios are value / interproc shm:// value"
    elif names:
        ref = names[0]
        note = f"shm:// is not available: ratios are value / {ref} value"
    else:
        return None, "no interproc transport measured: no ratios"
    by_metric = {r["metric"]: r["median"] for r in measured if r["transport"] == ref}
    for r in results:
        base = by_metric.get(r["metric"])
        r["ratio"] = (r["median"] / base) if (r["status"] == "ok" and r["median"] and base) else None
        r["ratio_to"] = ref
    return ref, note


def run(opts: Options, progress: Any = None) -> dict[str, Any]:
    peers, extras = all_peers()
    budget = _Budget(opts.run_budget)
    results: list[dict[str, Any]] = []
    for peer in peers:
        if opts.only and opts.only.lower() not in peer.name.lower():
            continue
        used_up = budget.used_up()
        if used_up:
            results.extend(_entry(peer, m, status="skipped", reason=used_up) for m in METRICS)
            continue
        if progress:
            progress(peer.name)
        results.extend(run_case(peer, opts, budget.alarm(opts.case_timeout)))
    if opts.extras and not opts.iterations:
        # Baselines from the other benchmark modules (C spin/futex/ring, a
        # pure-Python busy-poll): more rows of the same table.
        for name, mod, error in extras:
            if mod is not None and not hasattr(mod, "extra_results"):
                continue
            names = [name, *getattr(mod, "BASELINES", ())]
            if opts.only and not any(opts.only.lower() in n.lower() for n in names):
                continue
            if progress:
                progress(f"baselines: {name}")
            rows = _extra_results(name, mod, error, opts, budget)
            if opts.only and opts.only.lower() not in name.lower():
                rows = [r for r in rows if opts.only.lower() in r["transport"].lower()]
            results.extend(rows)
    ref, note = add_ratios(results)
    return {"machine": machine(), "quick": opts.quick, "iterations": opts.iterations, "pinned": opts.cpus(),
            "reference": ref, "note": note, "results": results}


# -- presentation ------------------------------------------------------------------------

def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "µs":
        return f"{value:.1f}" if value < 1000 else f"{value:,.0f}"
    if unit == "msg/s":
        return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:.0f}k"
    return f"{value:,.0f}"


def _fmt_ratio(r: float | None) -> str:
    return "-" if r is None else f"x{r:.2f}" if r < 100 else f"x{r:,.0f}"


def _rows(report: dict[str, Any]) -> dict[str, dict[str, dict]]:
    """transport -> metric -> result, in table order: the cases, then the baselines."""
    rows: dict[str, dict[str, dict]] = {}
    for group in (False, True):
        for r in report["results"]:
            if (r.get("group") == "baseline") == group and r["metric"] in _METRIC_KEYS | {"-"} \
                    and not r.get("section"):
                rows.setdefault(r["transport"], {})[r["metric"]] = r
    return rows


def table(report: dict[str, Any]) -> str:
    """The one table: every case and every baseline, one row each, µs / msg/s / MiB/s."""
    rows = _rows(report)
    head = ("TRANSPORT", "RTT64 med µs", "p99 µs", "ratio", "64B msg/s", "ratio", "1MiB MiB/s", "ratio")
    lines = [head]
    notes = []
    for name, by in rows.items():
        statuses = {r["status"] for r in by.values()}
        if statuses <= {"skipped", "error"} and len(statuses) == 1 and len({r["reason"] for r in by.values()}) == 1:
            first = next(iter(by.values()))
            lines.append((name, f"{first['status']}: {first['reason']}"))
            continue
        cells = [name]
        for key, unit in (("rtt_64B", "µs"), ("oneway_64B", "msg/s"), ("bulk_1MiB", "MiB/s")):
            r = by.get(key)
            blanks = ["", ""] if key == "rtt_64B" else [""]
            if r is None:  # a baseline that does not measure this metric
                cells += ["-"] + blanks
                continue
            if r["status"] != "ok":
                cells += [r["status"]] + blanks
                if r["reason"]:
                    notes.append(f"{name} {key}: {r['reason']}")
                continue
            cells.append(_fmt(r["median"], unit))
            if key == "rtt_64B":
                cells.append(_fmt(r["p99"], unit))
            cells.append(_fmt_ratio(r.get("ratio")))
        lines.append(tuple(cells))
    widths = [max(len(l[i]) for l in lines if len(l) == len(head)) for i in range(len(head))]
    out = []
    m = report["machine"]
    mode = "quick" if report["quick"] else "full"
    pinned = report.get("pinned")
    where = f"sides pinned to CPUs {pinned[0]} and {pinned[1]}" if pinned else "not pinned"
    out.append(f"interproc bench ({mode}) on {m['cpus']} CPUs, {m['cpu']}, {m['system']}, Python {m['python']}; {where}")
    out.append(report["note"] + " (latency: >1 is slower; throughput: <1 is slower)")
    out.append("")
    for l in lines:
        if len(l) == len(head):
            out.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(l, widths))))
        else:
            out.append(f"{l[0].ljust(widths[0])}  {l[1]}")
    if notes:
        out.append("")
        out += [f"error: {n}" for n in notes]
    for name, mod, _ in extra_modules():
        section = getattr(mod, "SECTION", None) if mod is not None else None
        rows_of = [r for r in report["results"] if r.get("section") == name]
        if section and rows_of:
            out += ["", section_table(section, rows_of)]
    return "\n".join(out)


_COLORS = {"interproc": "tab:blue", "peer": "tab:gray", "baseline": "tab:orange"}


def plot(report: dict[str, Any], path: str) -> None:
    """Bar charts of the table's medians: the same rows, in the same order, in every panel."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError("--plot needs matplotlib (pip install matplotlib, or the 'bench' extra)") from exc
    rows = _rows(report)
    names = list(rows)[::-1]  # barh draws bottom-up: keep the table's top row on top
    fig, axes = plt.subplots(1, len(METRICS), figsize=(6 * len(METRICS), 0.35 * len(names) + 1.5), sharey=True)
    for ax, metric in zip(axes, METRICS):
        values, colors = [], []
        for name in names:
            r = rows[name].get(metric.key)
            ok = r is not None and r["status"] == "ok" and r["median"]
            values.append(r["median"] if ok else float("nan"))
            group = next(iter(rows[name].values())).get("group", "peer")
            colors.append(_COLORS.get(group, "tab:gray"))
        ax.barh(names, values, color=colors)
        ax.set_xscale("log")
        better = "higher" if metric.higher_is_better else "lower"
        ax.set_title(f"{metric.title} ({metric.unit}, {better} is better)")
        ax.grid(axis="x", which="both", alpha=0.3)
    fig.suptitle("interproc bench: medians between two processes "
                 "(blue: interproc, grey: other libraries, orange: baselines; no bar: not measured)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
