"""`interproc bench` never hangs on a stalled peer and keeps one consistent
table (issue 10).  The stalled peers are real processes that stop answering;
nothing here asserts a time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from conftest import SRC
from interproc._bench import runner, shmchannel
from interproc._bench.peers import OsPipe

STALLED = "import time\ntime.sleep(3600)\n"  # a peer program that never answers


def test_busy_poll_round_trip_with_a_stalled_peer_is_reported_not_hung():
    with pytest.raises(shmchannel.Stalled, match="did not answer"):
        shmchannel.pypoll_rtt(1000, budget=0.3, peer=STALLED)


def test_busy_poll_one_way_with_a_stalled_peer_is_reported_not_hung():
    with pytest.raises(shmchannel.Stalled, match="sent nothing"):
        shmchannel.pypoll_oneway(1000, budget=0.3, peer=STALLED)


def test_baseline_rows_report_a_stalled_peer_as_failed(monkeypatch):
    monkeypatch.setattr(shmchannel, "_PYPOLL", STALLED)
    monkeypatch.setattr(shmchannel, "c_baselines", lambda quick, limit=0: [])
    rows = shmchannel.extra_results(runner.Options(quick=True))
    by = {r["metric"]: r for r in rows}
    assert by["rtt_64B"]["status"] == "error" and "Stalled" in by["rtt_64B"]["reason"]
    assert by["oneway_64B"]["status"] == "ok"  # the other measurement still ran
    assert by["oneway_64B"]["transport"] == by["rtt_64B"]["transport"]  # one name per peer


class _StalledPipe(OsPipe):
    """os.pipe, but the child side never echoes: the measuring side waits for it."""

    name = "stalled os.pipe"

    def serve(self, st, size, pre):
        class Stalled:
            def recv(self, size):
                time.sleep(3600)

            def close(self):
                pass

        return None, Stalled


def test_a_stalled_case_is_an_error_row_and_the_run_goes_on():
    results = runner.run_case(_StalledPipe(), runner.Options(quick=True), watchdog=2)
    assert results[0]["metric"] == "rtt_64B" and results[0]["status"] == "error"
    assert "timed out" in results[0]["reason"]


def test_cases_past_the_run_budget_are_skipped_with_the_reason(monkeypatch):
    monkeypatch.setattr(runner.Options, "run_budget", property(lambda self: 0.0))
    report = runner.run(runner.Options(quick=True, only="os.pipe"))
    rows = [r for r in report["results"] if r["transport"] == "os.pipe (raw)"]
    assert rows and all(r["status"] == "skipped" and "time budget" in r["reason"] for r in rows)


def test_one_table_one_unit_and_a_plot_with_the_same_rows(tmp_path, monkeypatch):
    report = {
        "machine": {"cpus": 2, "cpu": "x", "system": "Linux", "python": "3"}, "quick": True, "pinned": None,
        "note": "ratios are value / interproc shm:// value", "results": [
            dict(runner._entry(p, m, median=1.0 + i, p99=2.0 + i, samples=5), group=g)
            for i, (p, g) in enumerate([(OsPipe(), "peer")]) for m in runner.METRICS
        ] + [runner._adopt(r, "shmchannel") for r in (
            {"transport": "C spin ping-pong", "metric": "rtt_64B", "median": 0.5, "p99": 0.7, "status": "ok"},
            {"transport": "C shm ring (memcpy in/out)", "metric": "bulk_1MiB", "median": 3000.0, "status": "ok"},
        )]}
    out = runner.table(report)
    assert "µs" in out and " us" not in out
    lines = out.splitlines()
    assert sum(line.startswith("TRANSPORT") for line in lines) == 1  # one table
    for name in ("os.pipe (raw)", "C spin ping-pong", "C shm ring (memcpy in/out)"):
        assert sum(line.startswith(name) for line in lines) == 1
    assert runner._rows(report).keys() == {"os.pipe (raw)", "C spin ping-pong", "C shm ring (memcpy in/out)"}
    pytest.importorskip("matplotlib")
    png = tmp_path / "b.png"
    runner.plot(report, str(png))
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.timeout(200)
def test_quick_bench_json_has_one_name_and_one_unit_per_metric():
    env = dict(os.environ, PYTHONPATH=SRC)
    proc = subprocess.run([sys.executable, "-m", "interproc", "bench", "--quick", "--json", "--only", "busy-poll"],
                          capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)["results"]
    units = {(r["metric"], r["unit"]) for r in results if r["metric"] in {m.key for m in runner.METRICS}}
    assert units <= {(m.key, m.unit) for m in runner.METRICS}
    assert {r["transport"] for r in results} == {"python busy-poll (multiprocessing.shared_memory)"}
    assert {r["metric"] for r in results} == {"rtt_64B", "oneway_64B"}
