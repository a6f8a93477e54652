"""Tour: shared memory, named sync objects and shared data between two processes."""

from __future__ import annotations

import time

from . import Skip, Step, spawn_child, unique  # noqa: F401


def _child_shm(name: str) -> dict:
    from interproc.shm import SharedMemory
    from interproc.sync import Event

    with Event(name + ".ready") as ready, SharedMemory.open(name, timeout=10) as shm:
        ready.wait(10)
        text = bytes(shm.buf[:32]).rstrip(b"\0").decode()
        shm.buf[32:37] = b"reply"
        return {"read": text, "created": shm.created}


def shm_step() -> str:
    from interproc.shm import SharedMemory
    from interproc.sync import Event

    name = unique("shm")
    with SharedMemory.create(name, 4096) as shm, Event(name + ".ready", manual_reset=True) as ready:
        shm.buf[:13] = b"hello, child!"
        with spawn_child("interproc.cli.tour.step_shm:_child_shm", name) as child:
            ready.set()
            got = child.result()
        reply = bytes(shm.buf[32:37]).decode()
    return f"parent wrote {shm.size} B segment; child read {got['read']!r} (created={got['created']}), wrote back {reply!r}"


def _child_count(name: str, n: int) -> int:
    from interproc.shared import Int64, SharedStruct
    from interproc.sync import Mutex

    class Counter(SharedStruct):
        value: Int64 = 0
        plain: Int64 = 0

    m = Mutex(name)  # `with m:` acquires it; close() releases the handle
    try:
        with Counter.attach(name) as c:
            for _ in range(n):
                c.add("value", 1)
                with m:
                    c.plain = c.plain + 1
    finally:
        m.close()
    return n


def sync_step() -> str:
    from interproc.shared import Int64, SharedStruct

    class Counter(SharedStruct):
        value: Int64 = 0
        plain: Int64 = 0

    name, n = unique("count"), 2000
    with Counter.attach(name) as c:
        t0 = time.perf_counter()
        with spawn_child("interproc.cli.tour.step_shm:_child_count", name, n) as a, \
                spawn_child("interproc.cli.tour.step_shm:_child_count", name, n) as b:
            a.result(), b.result()
        dt = time.perf_counter() - t0
        return (f"2 processes x {n}: atomic add -> {c.value}, read-modify-write under named Mutex -> "
                f"{c.plain} (expected {2 * n}), {dt * 1000:.0f} ms")


STEPS = [
    Step(30, "shared memory", shm_step),
    Step(80, "shared data + sync", sync_step),
]
