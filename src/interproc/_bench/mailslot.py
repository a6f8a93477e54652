"""Mailslot benchmarks, between two processes (the peer is forked).

* ``tput_64B``        one-way 64-byte messages/s through a writer channel
                      (``interproc.connect("mailslot://...")``)
* ``tput_64B_write``  the same with connectionless ``Mailslot.write`` calls
* ``rtt_64B``         64-byte write -> read -> reply through two mailslots
                      (one per direction), in microseconds

Each number is the best of ``repeat`` runs, since the machine may be shared.
``run(quick=True) -> list[dict]`` is what ``interproc bench`` calls.
"""

from __future__ import annotations

import os
import time

from . import fork_peer, reap_peer

SMALL = 64


def _unique(tag: str) -> str:
    return f"bench.mailslot.{tag}.{os.getpid()}.{time.monotonic_ns()}"


def _writer_child(name: str, n: int, connectionless: bool) -> None:
    import interproc
    from interproc.mailslot import Mailslot

    msg = b"x" * SMALL
    if connectionless:
        for _ in range(n):
            Mailslot.write(name, msg, timeout=60)
    else:
        with interproc.connect(f"mailslot://{name}", timeout=30) as ch:
            send = ch.send
            for _ in range(n):
                send(msg, timeout=60)


def _throughput(n: int, connectionless: bool) -> float:
    from interproc.mailslot import Mailslot

    with Mailslot.create(_unique("tput"), max_message_size=SMALL) as slot:
        read = slot.read
        pid = fork_peer(_writer_child, slot.name, n, connectionless)
        try:
            read(timeout=30)  # the clock starts with the first message
            t0 = time.perf_counter()
            for _ in range(n - 1):
                read(timeout=30)
            elapsed = time.perf_counter() - t0
        finally:
            reap_peer(pid, "mailslot benchmark")
    return (n - 1) / elapsed


def _echo_child(inbox: str, outbox: str, n: int) -> None:
    import interproc
    from interproc.mailslot import Mailslot

    with Mailslot.create(inbox, max_message_size=SMALL) as slot, interproc.connect(f"mailslot://{outbox}", timeout=30) as out:
        for _ in range(n):
            out.send(slot.read(timeout=30))


def _round_trip(n: int) -> float:
    import interproc
    from interproc.mailslot import Mailslot

    inbox, outbox = _unique("rtt-in"), _unique("rtt-out")
    with Mailslot.create(outbox, max_message_size=SMALL) as replies:
        pid = fork_peer(_echo_child, inbox, outbox, n + 10)
        try:
            with interproc.connect(f"mailslot://{inbox}", timeout=30) as ch:
                msg = b"r" * SMALL
                for _ in range(10):  # warm up
                    ch.send(msg)
                    replies.read(timeout=30)
                t0 = time.perf_counter()
                for _ in range(n):
                    ch.send(msg)
                    replies.read(timeout=30)
                elapsed = time.perf_counter() - t0
        finally:
            reap_peer(pid, "mailslot benchmark")
    return elapsed / n * 1e6


def run(quick: bool = True, repeat: int | None = None) -> list[dict]:
    repeat = repeat or (2 if quick else 5)
    n_tput = 20_000 if quick else 200_000
    n_rtt = 2_000 if quick else 20_000
    tput = max(_throughput(n_tput, connectionless=False) for _ in range(repeat))
    tput_write = max(_throughput(n_tput, connectionless=True) for _ in range(repeat))
    rtt = min(_round_trip(n_rtt) for _ in range(repeat))
    return [
        {"transport": "mailslot", "metric": "tput_64B", "value": round(tput), "unit": "msg/s"},
        {"transport": "mailslot", "metric": "tput_64B_write", "value": round(tput_write), "unit": "msg/s"},
        {"transport": "mailslot", "metric": "rtt_64B", "value": round(rtt, 1), "unit": "us"},
    ]


if __name__ == "__main__":
    for row in run(quick=True):
        print(row)
