"""Mailslot throughput and latency between two processes (see interproc/_bench/mailslot.py).

    PYTHONPATH=src python benchmarks/mailslot_bench.py [--full]
"""

import sys

from interproc._bench.mailslot import run

if __name__ == "__main__":
    for row in run(quick="--full" not in sys.argv):
        print(f"{row['transport']:10} {row['metric']:16} {row['value']:>12} {row['unit']}")
