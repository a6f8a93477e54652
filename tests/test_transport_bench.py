"""The transport benchmark functions run and report sane numbers (no timing is asserted)."""

from __future__ import annotations

from interproc._bench import transports as bench


def test_run_reports_each_transport_and_overhead(monkeypatch):
    monkeypatch.setattr(bench, "COUNTS", {"rtt_64B": 50, "tput_64B": 200, "tput_1MiB": 3})
    results = bench.run(quick=True, only=["interproc pipe", "raw os.pipe", "interproc unix://",
                                          "raw unix socket"], repeat=1)
    assert {(r["transport"], r["test"]) for r in results} == {
        (t, k) for t in ("interproc pipe", "raw os.pipe", "interproc unix://", "raw unix socket")
        for k in bench.TESTS
    }
    assert all(r["value"] > 0 for r in results)
    over = bench.overheads(results)
    assert {(o["transport"], o["baseline"]) for o in over} == {
        ("interproc pipe", "raw os.pipe"), ("interproc unix://", "raw unix socket")}
    table = bench.format_table(results)
    assert table.count("\n") == 1 + len({r["transport"] for r in results})
