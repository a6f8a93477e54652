"""Tour: one publisher, two subscriber processes (block and drop_oldest policies)."""

from __future__ import annotations

import time

from . import Step, spawn_child, unique


def _child_subscriber(name: str, policy: str, n: int) -> dict:
    from interproc import ChannelClosed
    from interproc.shm import Subscriber

    got = []
    with Subscriber.open(name, policy=policy, timeout=10) as sub:
        while True:
            try:
                with sub.recv(timeout=10) as sample:
                    got.append(int(bytes(sample[:8])))
            except ChannelClosed:
                break
        return {"received": len(got), "in_order": got == sorted(got), "last": got[-1] if got else None,
                "dropped": sub.dropped, "history": got[:2]}


def pubsub_step() -> str:
    from interproc.shm import Publisher

    name, n, history = unique("pub"), 500, 2
    with Publisher.create(name, 64, 16, history=history) as pub:
        pub.send(b"%08d" % 0)  # published before anyone subscribes: history
        pub.send(b"%08d" % 1)
        with spawn_child("interproc.cli.tour.step_pubsub:_child_subscriber", name, "block", n) as a, \
                spawn_child("interproc.cli.tour.step_pubsub:_child_subscriber", name, "drop_oldest", n) as b:
            deadline = time.monotonic() + 20
            while pub.subscribers < 2:
                if time.monotonic() > deadline:
                    raise RuntimeError("the subscriber processes did not join")
                time.sleep(0.01)
            t0 = time.perf_counter()
            for i in range(2, n):
                with pub.loan(8) as buf:  # zero copy: written straight into the slot
                    buf[:] = b"%08d" % i
            dt = time.perf_counter() - t0
            pub.close()  # subscribers drain what is queued, then see ChannelClosed
            block, drop = a.result(), b.result()
    if not (block["received"] == n and block["in_order"] and drop["in_order"]
            and drop["received"] + drop["dropped"] == n):
        raise RuntimeError(f"samples went missing: block {block}, drop_oldest {drop}")
    return (f"{n} samples in {dt * 1000:.0f} ms; block subscriber got {block['received']}/{n} in order "
            f"(history {block['history']}), drop_oldest got {drop['received']} and counted {drop['dropped']} drops")


STEPS = [Step(32, "publish/subscribe", pubsub_step)]
