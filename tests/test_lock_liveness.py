"""The integer-only robust lock behind Mutex, SharedStruct.lock and every
segment header: how it decides that its owner is dead (issue 8).

A dead owner is a task that no longer exists, a zombie, or a task whose
start time differs from the one the owner recorded (its id was recycled).
"""

from __future__ import annotations

import os
import struct
import threading

from interproc.sync import Mutex

from conftest import wait_for_line

HOLD_AND_EXIT = """
import os, sys
from interproc.sync import Mutex
m = Mutex(sys.argv[1])
m.acquire()
print("HOLDING", flush=True)
sys.stdin.readline()
os._exit(0)          # dies holding it; the parent does not reap it yet
"""

HOLD = """
import sys, time
from interproc.sync import Mutex
m = Mutex(sys.argv[1])
m.acquire()
print("HOLDING", flush=True)
time.sleep(60)
"""


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        raw = f.read()
    return raw[raw.rfind(")") + 2]


def test_a_zombie_owner_counts_as_dead(spawn, name):
    import subprocess

    holder = spawn(HOLD_AND_EXIT, name, stdin=subprocess.PIPE)
    wait_for_line(holder, "HOLDING")
    m = Mutex(name)
    try:
        assert not m.acquire(timeout=0.1)
        holder.stdin.write("go\n")
        holder.stdin.flush()
        while _state(holder.pid) != "Z":
            os.sched_yield()
        assert m.acquire(timeout=10) and m.abandoned
        m.release()
    finally:
        m.close()
        holder.wait(timeout=10)


def test_an_owner_whose_id_was_recycled_counts_as_dead(spawn, name):
    holder = spawn(HOLD, name)
    wait_for_line(holder, "HOLDING")
    m = Mutex(name)
    try:
        assert not m.acquire(timeout=0.1)
        # Same tid, another start time: what a recycled pid looks like.
        start = struct.unpack_from("<Q", m._buf, 16)[0]
        struct.pack_into("<Q", m._buf, 16, start + 12345)
        assert m.acquire(timeout=10) and m.abandoned
        m.release()
    finally:
        holder.kill()
        holder.wait(timeout=10)
        m.close()  # the last live handle: the name goes


def test_a_thread_that_exits_holding_it_abandons_it(name):
    m = Mutex(name)
    try:
        t = threading.Thread(target=m.acquire)
        t.start()
        t.join()
        assert m.acquire(timeout=10) and m.abandoned
        m.release()
        assert not m.abandoned
    finally:
        m.close()


def test_a_forked_child_is_not_taken_for_its_parent(name):
    """After fork the child has another tid: it must wait, not recurse."""
    m = Mutex(name)
    try:
        assert m.acquire()
        pid = os.fork()
        if pid == 0:  # child: the lock is the parent's
            code = 0 if m.acquire(timeout=0.2) is False else 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        m.release()
    finally:
        m.close()


def test_a_dead_holder_that_had_our_thread_id_is_not_taken_for_us(name):
    """Thread ids are recycled: a lock recorded as held by our id with another
    start time is an abandoned lock, not a recursive acquire."""
    m = Mutex(name)
    try:
        assert m.acquire()
        m.release()
        me = threading.get_native_id()
        start = struct.unpack_from("<Q", m._buf, 16)[0]
        struct.pack_into("<IIIIQ", m._buf, 0, me, 0x4B4C5049, 1, me, start + 777)
        assert m.acquire(timeout=10) and m.abandoned
        m.release()
        assert m.acquire(timeout=0) and not m.abandoned  # free again, and ours
        m.release()
    finally:
        m.close()
