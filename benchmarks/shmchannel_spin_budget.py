"""How the hybrid spin budget trades latency for CPU: the peer answers after
D microseconds of work; we measure the round trip for several budgets.

    PYTHONPATH=src python benchmarks/shmchannel_spin_budget.py
"""

from __future__ import annotations

import statistics
import time

import interproc
from interproc._bench.shmchannel import _finish, _name, _spawn

PEER = r"""
import sys, time, interproc
ch = interproc.connect(sys.argv[1], timeout=10)
delay = float(sys.argv[2]) / 1e6
clock = time.perf_counter
for msg in ch:
    end = clock() + delay
    while clock() < end:
        pass
    ch.send(msg)
"""


def measure(delay_us: float, spin_us: float, n: int = 2000) -> tuple[float, float]:
    name = _name()
    with interproc.listen(f"shm://{name}", spin_us=spin_us) as lst:
        proc = _spawn(PEER, f"shm://{name}", str(delay_us))
        with lst.accept(timeout=30) as ch:
            samples = []
            cpu0 = time.process_time()
            for _ in range(n):
                t0 = time.perf_counter_ns()
                ch.send(b"x" * 64)
                ch.recv()
                samples.append(time.perf_counter_ns() - t0)
            cpu = (time.process_time() - cpu0) / n
        _finish(proc)
    return statistics.median(samples[n // 10:]) / 1000, cpu * 1e6


def main() -> None:
    budgets = [0, 25, 50, 100, 200]
    print("peer delay us | " + " | ".join(f"spin {b:>3} us: RTT / our CPU" for b in budgets))
    for delay in [0, 20, 60, 150]:
        cells = []
        for b in budgets:
            rtt, cpu = measure(delay, b)
            cells.append(f"{rtt:8.1f} / {cpu:6.1f} us")
        print(f"{delay:13} | " + " | ".join(f"{c:>27}" for c in cells))


if __name__ == "__main__":
    main()
