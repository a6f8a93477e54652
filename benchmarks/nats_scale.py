"""nats:// against tcp:// and pyzmq (see interproc/_bench/nats.py and docs/scale.md).

    PYTHONPATH=src python benchmarks/nats_scale.py [--full]
"""

import sys

from interproc._bench.nats import run

if __name__ == "__main__":
    for row in run(quick="--full" not in sys.argv):
        if row.get("status", "ok") != "ok":
            print(f"{row['transport']:48} {row['metric']:14} {row['status']}: {row.get('reason')}")
            continue
        lat = f"  p50 {row['p50_us']:>8} µs  p99 {row['p99_us']:>8} µs" if "p50_us" in row else ""
        print(f"{row['transport']:48} {row['metric']:14} {row['value']:>10} {row['unit']}{lat}")
