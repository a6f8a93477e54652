"""Fault injection for the shared-memory sync objects (issue 8; docs/reliability.md).

    PYTHONPATH=src python benchmarks/sync_faults.py [--rounds N] [--json]

Three experiments, each N rounds with real processes and every wait bounded:

* ``stranded``: four processes wait on a Semaphore(0) with timeout=None;
  ``release()`` wakes one and a random one of the four is SIGKILLed a random
  0-2 ms later.  Invariant: within 2 s the count is taken (by a live waiter,
  or by the killed one before it died) -- never left beside live sleepers.
* ``abandoned``: a process holding a Mutex (locking and unlocking in a loop) is
  SIGKILLed at a random moment.  Invariant: the next acquire(timeout=5)
  succeeds (``abandoned`` set if it died holding it).
* ``hostile``: a process rewrites a global Mutex's lock bytes with garbage
  and pointer-like values while another process locks and unlocks it.
  Invariant: the locker never dies of a signal.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid

try:
    import interproc  # noqa: F401
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from interproc._naming import segment_name
from interproc._shm import HEADER_SIZE
from interproc.sync import Mutex, Semaphore

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))

WAITER = """
import sys
from interproc.sync import Semaphore
s = Semaphore(sys.argv[1], 0)
print("W", flush=True)
s.acquire(timeout=None)
print("GOT", flush=True)
"""

HOLDER = """
import sys
from interproc.sync import Mutex
m = Mutex(sys.argv[1])
print("H", flush=True)
while True:
    with m:
        pass
"""

GARBLER = """
import os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR)
off = int(sys.argv[2])
print("G", flush=True)
i = 0
while True:
    i += 1
    os.pwrite(fd, struct.pack("<QQ", 0x4141414141414140 + 8 * i, 0x7f0000000000 + 8 * i), off + 24)
    if i % 64 == 0:
        os.pwrite(fd, struct.pack("<I", 0xdead0000 + i), off)
        os.pwrite(fd, struct.pack("<II", i, 0x41414141), off + 8)
"""

LOCKER = """
import sys, interproc
from interproc.sync import Mutex
m = Mutex(sys.argv[1], scope="global", mode=0o666)
for _ in range(500):
    try:
        if m.acquire(timeout=0.5):
            m.release()
    except (interproc.ProtocolError, RuntimeError, ValueError):
        pass
m.close()
"""


def _start(code: str, *args: str) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True, env=ENV)
    p.stdout.readline()  # its readiness line
    return p


def _stop(*procs: subprocess.Popen) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)


def _sleepers(sem: Semaphore) -> int:
    from interproc import _native

    return _native.atomic_load(sem._buf, 8, size=4, signed=False)


def stranded(rounds: int) -> dict:
    failures = 0
    for _ in range(rounds):
        name = f"faults.{uuid.uuid4().hex[:8]}"
        sem = Semaphore(name, 0)
        waiters = [_start(WAITER, name) for _ in range(4)]
        try:
            deadline = time.monotonic() + 10
            while _sleepers(sem) < 4 and time.monotonic() < deadline:
                time.sleep(0.005)
            sem.release()
            time.sleep(random.uniform(0, 0.002))
            random.choice(waiters).kill()
            deadline = time.monotonic() + 2
            while sem.value and time.monotonic() < deadline:
                time.sleep(0.005)
            failures += bool(sem.value)
        finally:
            _stop(*waiters)
            sem.close()
    return {"experiment": "stranded", "rounds": rounds, "failures": failures}


def abandoned(rounds: int) -> dict:
    failures = 0
    for _ in range(rounds):
        name = f"faults.{uuid.uuid4().hex[:8]}"
        m = Mutex(name)
        holder = _start(HOLDER, name)
        try:
            time.sleep(random.uniform(0, 0.02))
            holder.send_signal(signal.SIGKILL)
            holder.wait(timeout=10)
            if m.acquire(timeout=5):
                m.release()
            else:
                failures += 1
        finally:
            _stop(holder)
            m.close()
    return {"experiment": "abandoned", "rounds": rounds, "failures": failures}


def hostile(rounds: int) -> dict:
    crashes = 0
    for _ in range(rounds):
        name = f"faults.{uuid.uuid4().hex[:8]}"
        m = Mutex(name, scope="global", mode=0o666)
        path = os.path.join("/dev/shm", segment_name("mutex", name, "global"))
        garbler = _start(GARBLER, path, str(HEADER_SIZE))
        try:
            locker = subprocess.run([sys.executable, "-c", LOCKER, name], env=ENV, capture_output=True, timeout=120)
            crashes += locker.returncode < 0
        finally:
            _stop(garbler)
            m.close()
    return {"experiment": "hostile", "rounds": rounds, "failures": crashes}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = [stranded(args.rounds), abandoned(args.rounds), hostile(max(1, args.rounds // 5))]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        print(f"{r['experiment']:10} {r['rounds']:5} rounds  {r['failures']} failures")


if __name__ == "__main__":
    main()
