"""Run the shm:// benchmarks and their baselines; print a table and the issue-4 targets.

    PYTHONPATH=src python benchmarks/shmchannel_bench.py [--quick] [--repeat 3] [--json]

Each measurement is repeated (interleaved, so machine load hits every
transport alike) and the median of the repeats is shown.  Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict

from interproc._bench import shmchannel as b


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    runs: dict[tuple, list[float]] = defaultdict(list)
    units: dict[tuple, str] = {}
    skipped = []
    for _ in range(args.repeat):
        for r in b.run_all(args.quick, progress=not args.json):
            if "skipped" in r:
                skipped.append(r)
                continue
            key = (r["transport"], r["metric"], r.get("policy", ""), r.get("recv", ""))
            runs[key].append(r["value"])
            units[key] = r["unit"]
    rows = [{"transport": k[0], "metric": k[1], "policy": k[2], "recv": k[3],
             "value": statistics.median(v), "unit": units[k], "runs": v} for k, v in runs.items()]
    if args.json:
        print(json.dumps(rows + skipped, indent=2))
        return
    for r in rows:
        print(f"{r['transport'][:44]:44} {r['metric']:30} {r['policy']:7} {r['recv']:9} "
              f"{r['value']:14.3f} {r['unit']}")
    for s in skipped:
        print(f"{s['transport']}: skipped ({s['skipped']})")

    def get(transport, metric, policy="", recv=""):
        for r in rows:
            if (r["transport"], r["metric"], r["policy"], r["recv"]) == (transport, metric, policy, recv):
                return r["value"]
        return None

    print("\nissue 4 targets (medians of the repeats):")
    rtt = get("shm://", "rtt_64B_median", "hybrid")
    pyrtt = get("python busy-poll (multiprocessing.shared_memory)", "rtt_64B_median")
    print(f"  64 B RTT, default policy: {rtt:.3f} us (target <= 1.0); "
          f"python busy-poll {pyrtt:.3f} us -> {pyrtt / rtt:.1f}x (target >= 2x)")
    msgs = get("shm://", "oneway_64B_msgs", "hybrid", "recv")
    pymsgs = get("python busy-poll (multiprocessing.shared_memory)", "oneway_64B_msgs")
    print(f"  64 B one-way: {msgs / 1e6:.2f} M msg/s (target >= 3); python busy-poll "
          f"{pymsgs / 1e6:.2f} M -> {msgs / pymsgs:.1f}x (target >= 3x)")
    big = get("shm://", f"oneway_{b.MiB}B_throughput", "hybrid", "recv_into")
    cring = get("C shm ring (memcpy in/out)", f"oneway_{b.MiB}B_throughput")
    if cring:
        print(f"  1 MiB one-way (recv_into): {big:.0f} MiB/s = {big / cring:.0%} of the C ring "
              f"({cring:.0f} MiB/s; target >= 85%)")
    sleep = get("shm://", "rtt_64B_median", "sleep")
    futex = get("C futex ping-pong", "rtt_64B_median")
    if futex:
        print(f"  sleep policy RTT {sleep:.2f} us vs C futex ping-pong {futex:.2f} us -> "
              f"{sleep / futex:.2f}x (target <= 1.2x)")
    for policy in b.POLICIES:
        cpu = get("shm://", "idle_receiver_cpu", policy)
        print(f"  idle receiver CPU over the idle period, {policy}: {cpu:.1f} ms")


if __name__ == "__main__":
    main()
