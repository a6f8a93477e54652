"""pub/sub with zero-copy loans: messages/s against message size.

    PYTHONPATH=src python benchmarks/pubsub_loan_sweep.py

The publisher writes one byte of each loaned slot in place (as a producer
filling a frame would write into it), the subscriber releases each sample
without copying it: with loans nothing scales with the size, so the
message rate should not either.  The clock includes the subscriber
receiving the last sample.
"""
import os
import sys
import time

try:
    import interproc  # noqa: F401
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from interproc.shm import Publisher, Subscriber

N = 20000
for size in (64, 4096, 65536, 1 << 20):
    name = f"loansweep.{os.getpid()}.{size}"
    pub = Publisher.create(name, slot_size=size, slots=64)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        sub = Subscriber.open(name, timeout=10)
        os.write(w, b"x")
        for _ in range(N):
            s = sub.recv(timeout=30)
            s.release()
        sub.close()
        os._exit(0)
    os.read(r, 1)
    t0 = time.perf_counter()
    for _ in range(N):
        with pub.loan(size) as buf:
            buf[0] = 1          # touch one byte: a real producer writes in place
    os.waitpid(pid, 0)
    dt = time.perf_counter() - t0
    pub.close()
    print(f"{size:>8} B  {N/dt:>10,.0f} msg/s  {N*size/dt/2**20:>10,.0f} MiB/s")
