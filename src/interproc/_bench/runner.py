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

from . import machine, summarize
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
    Metric("rtt_64B", 64, "us", False, "64 B round trip"),
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


def run_case(peer: Peer, opts: Options) -> list[dict[str, Any]]:
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
        with _alarm(opts.case_timeout):
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


def _extra_results(name: str, mod: Any, error: str | None, opts: Options) -> list[dict[str, Any]]:
    """Results of another benchmark module (``extra_results``, ``run_all`` or ``run``)."""
    if mod is None:
        return [_adopt({"transport": name, "metric": "-", "unit": "", "status": "error",
                        "reason": f"import failed: {error}"}, name)]
    try:
        if hasattr(mod, "extra_results"):
            raw = mod.extra_results(opts)
        elif hasattr(mod, "run_all"):
            raw = mod.run_all(quick=opts.quick)
        elif hasattr(mod, "run"):
            raw = mod.run(quick=opts.quick)
        else:
            return []
    except Exception as exc:  # one broken module must not sink the run
        return [_adopt({"transport": name, "metric": "-", "unit": "", "status": "error",
                        "reason": f"{type(exc).__name__}: {exc}"}, name)]
    return [_adopt(r, name) for r in raw]


def _adopt(r: dict[str, Any], source: str) -> dict[str, Any]:
    """A result from an extra module, in this runner's shape."""
    out = dict(r)
    out["source"] = source
    out.setdefault("metric", r.get("test", "-"))
    out.setdefault("group", "baseline")
    out.setdefault("median", r.get("value"))
    out.setdefault("p99", None)
    out.setdefault("status", "ok")
    out.setdefault("reason", None)
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
    results: list[dict[str, Any]] = []
    for peer in peers:
        if opts.only and opts.only.lower() not in peer.name.lower():
            continue
        if progress:
            progress(peer.name)
        results.extend(run_case(peer, opts))
    if opts.extras and not opts.iterations:
        # The other benchmark modules of this package (the shm channel's C
        # baselines, the transports' and mailslots' own runs): appended as
        # they come, in their own section of the table.
        for name, mod, error in extras:
            if opts.only and opts.only.lower() not in name.lower():
                continue
            if progress:
                progress(f"extra benchmarks: {name}")
            results.extend(_extra_results(name, mod, error, opts))
    ref, note = add_ratios(results)
    return {"machine": machine(), "quick": opts.quick, "iterations": opts.iterations, "pinned": opts.cpus(),
            "reference": ref, "note": note, "results": results}


# -- presentation ------------------------------------------------------------------------

def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "us":
        return f"{value:.1f}" if value < 1000 else f"{value:,.0f}"
    if unit == "msg/s":
        return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:.0f}k"
    return f"{value:,.0f}"


def _fmt_ratio(r: float | None) -> str:
    return "-" if r is None else f"x{r:.2f}" if r < 100 else f"x{r:,.0f}"


def table(report: dict[str, Any]) -> str:
    rows: dict[str, dict[str, dict]] = {}
    extras = [r for r in report["results"] if r.get("group") == "baseline"]
    for r in report["results"]:
        if r.get("group") == "baseline":
            continue
        rows.setdefault(r["transport"], {})[r["metric"]] = r
    head = ("TRANSPORT", "RTT64 med us", "p99 us", "ratio", "64B msg/s", "ratio", "1MiB MiB/s", "ratio")
    lines = [head]
    notes = []
    for name, by in rows.items():
        statuses = {r["status"] for r in by.values()}
        if statuses == {"skipped"}:
            lines.append((name, "skipped: " + next(iter(by.values()))["reason"]))
            continue
        cells = [name]
        for key, unit in (("rtt_64B", "us"), ("oneway_64B", "msg/s"), ("bulk_1MiB", "MiB/s")):
            r = by.get(key)
            if r is None or r["status"] != "ok":
                cells += ["error"] + (["", ""] if key == "rtt_64B" else [""])
                if r is not None and r["reason"]:
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
    if extras:
        out.append("")
        out.append("baselines and extra measurements (other modules of interproc._bench):")
        source = None
        for r in extras:
            if r.get("source") != source:
                source = r.get("source")
                out.append(f"  [{source}]")
            if r.get("status") == "error":
                out.append(f"  {r['transport']:<28} error: {r.get('reason')}")
                continue
            value = r["median"]
            shown = "-" if not isinstance(value, (int, float)) else f"{value:,.3f}" if value < 100 else f"{value:,.0f}"
            extra = {k: v for k, v in r.items() if k not in {"transport", "metric", "test", "median", "value", "p99",
                                                              "unit", "group", "status", "reason", "ratio",
                                                              "ratio_to", "source", "runs", "higher_is_better"}}
            detail = " ".join(f"{k}={v}" for k, v in extra.items())
            out.append(f"  {r['transport']:<28} {r['metric']:<24} {shown:>12} {r['unit']:<6} {detail}")
    return "\n".join(out)


def plot(report: dict[str, Any], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError("--plot needs matplotlib (pip install matplotlib, or the 'bench' extra)") from exc
    fig, axes = plt.subplots(1, len(METRICS), figsize=(6 * len(METRICS), 0.45 * 14 + 1.5))
    for ax, metric in zip(axes, METRICS):
        data = [r for r in report["results"] if r["metric"] == metric.key and r["status"] == "ok"]
        names = [r["transport"] for r in data][::-1]
        values = [r["median"] for r in data][::-1]
        colors = ["tab:blue" if r["group"] == "interproc" else "tab:gray" for r in data][::-1]
        ax.barh(names, values, color=colors)
        ax.set_xscale("log")
        better = "higher" if metric.higher_is_better else "lower"
        ax.set_title(f"{metric.title} ({metric.unit}, {better} is better)")
        ax.grid(axis="x", which="both", alpha=0.3)
    fig.suptitle("interproc bench: median between two processes (blue: interproc)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
