"""The RPC section of `interproc bench` runs and reports what it says (short windows:
the numbers mean nothing here, only the shape)."""

from __future__ import annotations

import os

from interproc._bench import rpc as rpc_bench


def test_rpc_bench_rows(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([rpc_bench._SRC, os.environ.get("PYTHONPATH", "")]))
    rows = rpc_bench.run(quick=True, clients=(1, 2), seconds=0.3, systems=("interproc",))
    got = {(r["transport"], r["metric"]): r for r in rows}
    for over in ("shm://", "tcp://"):
        for n in (1, 2):
            r = got[(f"rpc interproc {over}", f"calls_{n}cl")]
            assert r["unit"] == "calls/s" and r["value"] > 0, r
            assert 0 < r["p50_us"] <= r["p99_us"]
