"""The RPC section of `interproc bench` runs and reports what it says (short windows:
the numbers mean nothing here, only the shape)."""

from __future__ import annotations

import os

from interproc._bench import rpc as rpc_bench
from interproc._bench import runner


def test_rpc_bench_rows(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([rpc_bench._SRC, os.environ.get("PYTHONPATH", "")]))
    rows = rpc_bench.run(quick=True, clients=(1, 2), seconds=0.3, systems=("interproc",))
    got = {(r["transport"], r["metric"]): r for r in rows}
    for over in ("shm://", "tcp://"):
        for n in (1, 2):
            r = got[(f"rpc interproc {over}", f"calls_{n}cl")]
            assert r["status"] == "ok" and r["unit"] == "calls/s" and r["value"] > 0, r
            assert 0 < r["p50_us"] <= r["p99_us"]
    # The section the bench table shows: one line per system, the numbers in it.
    rpc_bench.SECTION["metrics"] = ("calls_1cl", "calls_2cl")
    try:
        text = rpc_bench.table(rows)
    finally:
        rpc_bench.SECTION["metrics"] = ("calls_1cl", "calls_8cl")
    line = next(l for l in text.splitlines() if l.startswith("rpc interproc shm://"))
    assert f"{got[('rpc interproc shm://', 'calls_1cl')]['value']:,}" in line


def test_rpc_bench_budget_used_up_is_a_row_not_a_hang():
    rows = rpc_bench.run(quick=True, clients=(1, 8), systems=("Pyro5", "RPyC"), budget=0.5)
    assert len(rows) == 4 and all(r["status"] == "skipped" for r in rows), rows
    assert all("budget" in r["reason"] or "not installed" in r["reason"] for r in rows)
    text = rpc_bench.table(rows)
    assert "rpc Pyro5 tcp" in text and "skipped" in text


def test_runner_keeps_the_rpc_section_apart_from_the_table():
    rows = [{"transport": "rpc interproc shm://", "metric": "calls_1cl", "value": 1000, "unit": "calls/s",
             "p50_us": 5.0, "p99_us": 9.0, "status": "ok", "x_pyro5": 10.0}]

    class Module:  # what _extra_results reads from a section module
        SECTION = rpc_bench.SECTION

        @staticmethod
        def extra_results(options):
            return rows

    kept = runner._extra_results("rpc", Module, None, runner.Options(quick=True))
    assert [r["section"] for r in kept] == ["rpc"] and kept[0]["unit"] == "calls/s"
    report = {"machine": {"cpus": 2, "cpu": "x", "system": "y", "python": "3"}, "quick": True, "pinned": None,
              "note": "n", "results": kept}
    text = runner.table(report)
    assert rpc_bench.SECTION["title"] in text
    assert "x10.00" in text.split(rpc_bench.SECTION["title"])[1]
