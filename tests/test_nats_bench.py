"""The nats section of `interproc bench` (issue 14) runs and reports what it says, on a real
nats-server with real server/client/subscriber processes (tiny counts and windows: the
numbers mean nothing here, only the shape)."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("nats")

from nats_server import nats_server  # noqa: E402,F401  (the fixture)

from interproc._bench import nats as nats_bench  # noqa: E402
from interproc._bench import rpc as rpc_bench  # noqa: E402
from interproc._bench import runner  # noqa: E402


def test_nats_section_rows_and_table(nats_server, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([rpc_bench._SRC, os.environ.get("PYTHONPATH", "")]))
    rows = nats_bench.run(quick=True, url=nats_server.url, seconds=0.3, clients=2, servers=(1, 2),
                          subscribers=2, budget=50)
    got = {r["transport"]: r for r in rows}
    for name in ("rpc interproc nats:// 1 server (queue group)", "rpc interproc nats:// 2 servers (queue group)",
                 "rpc interproc tcp:// 1 server"):
        r = got[name]
        assert r["status"] == "ok" and r["metric"] == "calls_2cl" and r["value"] > 0, r
        assert 0 < r["p50_us"] <= r["p99_us"] and r["x_ref"] > 0
    assert got["rpc interproc tcp:// 1 server"]["x_ref"] == 1.0
    fan = got["mailslot nats:// fan-out"]
    assert fan["status"] == "ok" and fan["metric"] == "fanout_2sub" and fan["value"] > 0, fan
    # every subscriber got every message the publisher sent (a subject is a broadcast)
    assert fan["delivered"] == 2 * fan["sent"]
    zmq = got["pyzmq PUB/SUB tcp fan-out"]
    assert zmq["status"] == "ok" and zmq["value"] > 0 or "not installed" in zmq["reason"], zmq
    # The section `interproc bench` prints: one line per system, its numbers in it.
    monkeypatch.setitem(nats_bench.SECTION, "metrics", ("calls_2cl", "fanout_2sub"))
    text = nats_bench.table(rows)
    assert text.startswith(nats_bench.SECTION["title"])
    line = next(l for l in text.splitlines() if l.startswith("rpc interproc nats:// 2 servers"))
    assert f"{got['rpc interproc nats:// 2 servers (queue group)']['value']:,}" in line
    line = next(l for l in text.splitlines() if l.startswith("mailslot nats:// fan-out"))
    assert f"{fan['value']:,}" in line


def test_a_budget_used_up_is_a_row_not_a_hang(nats_server):
    rows = nats_bench.run(quick=True, url=nats_server.url, budget=0.5)
    assert rows and all(r["status"] == "skipped" and "budget" in r["reason"] for r in rows), rows
    assert {r["metric"] for r in rows} == {"calls_8cl", "fanout_16sub"}


def test_no_nats_server_is_a_row_in_the_table_and_the_section(monkeypatch):
    monkeypatch.setattr(nats_bench, "_binary", lambda: None)
    kept = runner._extra_results("nats", nats_bench, None, runner.Options(quick=True))
    assert kept and all(r["status"] == "skipped" and "nats-server" in r["reason"] for r in kept), kept
    report = {"machine": {"cpus": 2, "cpu": "x", "system": "y", "python": "3"}, "quick": True, "pinned": None,
              "note": "n", "results": kept}
    text = runner.table(report)
    table, section = text.split(nats_bench.SECTION["title"])
    assert "mailslot nats:// (via nats-server)  skipped: nats-server is not installed" in table
    assert "rpc interproc nats://" in section and "mailslot nats:// fan-out" in section


def test_only_picks_the_rows(monkeypatch):
    monkeypatch.setattr(nats_bench, "_binary", lambda: None)
    rows = nats_bench.extra_results(runner.Options(quick=True, only="fan-out"))
    assert [r["transport"] for r in rows] == ["mailslot nats:// fan-out"]
