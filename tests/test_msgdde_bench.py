"""The window-message and DDE benchmarks run end to end (short; no timing is asserted)."""

from __future__ import annotations

import pytest

from interproc._bench import msgdde


@pytest.mark.timeout(120)
def test_message_benchmarks_measure_every_peer():
    rows = {r["transport"]: r for r in msgdde.bench_messages(quick=True)}
    assert rows["messages send_message"]["value"] > 0
    assert rows["messages post_message"]["value"] > 0
    assert rows["bare send+recv over shm://"]["value"] > 0
    assert rows["rpc call shm://"]["value"] > 0
    assert rows["messages send_message"]["x_shm_rpc"] > 0
    assert "pyzmq REQ/REP ipc://" in rows  # measured, or an error row naming the extra


@pytest.mark.timeout(120)
def test_fanout_benchmark_delivers_to_every_client():
    rows = msgdde.bench_fanout(quick=True, counts=(2,), rate=200.0)
    dde_row = rows[0]
    assert dde_row["transport"] == "dde hot link" and dde_row["value"] > 0
    assert 0 < dde_row["delivered_fraction"] <= 1
    assert dde_row["p50_us"] is not None
