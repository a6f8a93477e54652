"""Tour: a shm:// channel between two processes, ping-pong and a timing."""

from __future__ import annotations

import statistics
import time

from . import Step, spawn_child, unique


def _child_echo(address: str, n: int) -> dict:
    import interproc

    with interproc.connect(address, timeout=10) as ch:
        count = 0
        for msg in ch:  # until the parent closes its end
            ch.send(msg)
            count += 1
        return {"echoed": count, "capacity": ch.capacity}


def ping_pong_step() -> str:
    import interproc

    name, n = unique("chan"), 2000
    with interproc.listen(f"shm://{name}") as lst:
        with spawn_child("interproc.cli.tour.step_shmchannel:_child_echo", f"shm://{name}", n) as child:
            with lst.accept(timeout=10) as ch:
                ch.send(b"ping")
                first = ch.recv(timeout=10)
                samples = []
                msg = bytes(64)
                for _ in range(n):
                    t0 = time.perf_counter_ns()
                    ch.send(msg)
                    ch.recv(timeout=10)
                    samples.append(time.perf_counter_ns() - t0)
            got = child.result()
    med = statistics.median(samples) / 1000
    return (f"sent b'ping', got {first!r} back; {got['echoed']} echoes through "
            f"{got['capacity'] >> 20} MiB rings, 64 B round trip median {med:.2f} us")


STEPS = [Step(31, "shared-memory channel (shm://)", ping_pong_step)]
