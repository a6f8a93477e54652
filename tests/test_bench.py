"""``interproc bench`` runs end to end (tiny counts; no timing is asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import SRC

EXPECTED = {
    "shm://", "pipe://", "unix://", "tcp://", "mailslot", "interproc pub/sub",
    "multiprocessing.Pipe", "os.pipe (raw)", "AF_UNIX socketpair (raw)", "pyzmq PAIR ipc://",
    "iceoryx2 pub/sub (copy)", "iceoryx2 pub/sub (loan)", "faster-fifo",
}
METRICS = {"rtt_64B", "oneway_64B", "bulk_1MiB"}


def _bench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=SRC)
    return subprocess.run([sys.executable, "-m", "interproc", "bench", *args],
                          capture_output=True, text=True, env=env, timeout=timeout)


@pytest.mark.timeout(150)
def test_bench_json_covers_every_transport_and_peer():
    proc = _bench("--quick", "--json", "--iterations", "20")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    results = report["results"]
    by = {}
    for r in results:
        by.setdefault(r["transport"], {})[r["metric"]] = r
    assert EXPECTED <= set(by)
    for name, metrics in by.items():
        assert set(metrics) == METRICS, name
        for r in metrics.values():
            assert {"transport", "metric", "median", "p99", "unit"} <= set(r)
            if r["status"] == "ok":
                assert r["median"] > 0 and r["p99"] > 0, r
                assert r["samples"] > 0
            else:
                assert r["status"] in ("skipped", "error")
                assert r["reason"], r
    # Our own pub/sub needs nothing outside interproc: it must be measured.
    assert all(r["status"] == "ok" for r in by["interproc pub/sub"].values()), by["interproc pub/sub"]
    # The reference for the ratios is shm:// when it exists, else said otherwise.
    ref = report["reference"]
    assert ref is not None
    assert "shm://" in report["note"]
    for r in by[ref].values():
        assert r["ratio"] == pytest.approx(1.0)


@pytest.mark.timeout(90)
def test_bench_table_and_only_filter(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "bench.png"
    proc = _bench("--iterations", "10", "--only", "pipe", "--plot", str(png))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "TRANSPORT" in out and "ratio" in out
    assert "os.pipe (raw)" in out and "multiprocessing.Pipe" in out
    assert "pyzmq" not in out  # filtered out
    assert "pipe://" in out  # measured or listed as skipped, never dropped
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_rejects_bad_iterations():
    proc = _bench("--iterations", "0", timeout=60)
    assert proc.returncode != 0
    assert "--iterations" in proc.stderr


def test_summaries_and_ratio_reference():
    from interproc._bench import percentile, summarize
    from interproc._bench.runner import add_ratios

    values = list(range(1, 101))
    assert percentile(values, 50) == 50 and percentile(values, 99) == 99 and percentile(values, 1) == 1
    assert summarize([3.0, 1.0, 2.0], higher_is_better=False) == (2.0, 3.0)
    assert summarize([3.0, 1.0, 2.0], higher_is_better=True) == (2.0, 1.0)

    def r(transport, group, median, status="ok"):
        return {"transport": transport, "group": group, "metric": "rtt_64B", "median": median, "status": status}

    results = [r("shm://", "interproc", None, "skipped"), r("pipe://", "interproc", 20.0), r("os.pipe", "peer", 10.0)]
    ref, note = add_ratios(results)
    assert ref == "pipe://" and "shm:// is not available" in note
    assert results[2]["ratio"] == 0.5 and results[0]["ratio"] is None
    results = [r("shm://", "interproc", 2.0), r("pipe://", "interproc", 20.0)]
    assert add_ratios(results)[0] == "shm://" and results[1]["ratio"] == 10.0
