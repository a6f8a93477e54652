"""Loans and samples do not outlive their block (issue 10): a numpy view still
alive when a loan is published or a sample released is a clear BufferError,
never a slot that can be rewritten under a subscriber.  Real processes."""

from __future__ import annotations

import subprocess

import pytest

from conftest import wait_for_line
from interproc.shm import Publisher, Subscriber

np = pytest.importorskip("numpy")

# A subscriber process: prints each sample it receives until the publisher closes.
SUBSCRIBER = """
import sys
from interproc.shm import Subscriber
sub = Subscriber.open(sys.argv[1], timeout=10)
print("SUBSCRIBED", flush=True)
for data in sub:
    print(data.hex(), flush=True)
sub.close()
"""


def test_a_view_alive_at_the_end_of_a_loan_is_an_error_and_nothing_is_published(name, spawn):
    pub = Publisher.create(name, slot_size=64, slots=4)
    try:
        proc = spawn(SUBSCRIBER, name)
        wait_for_line(proc, "SUBSCRIBED")
        with pytest.raises(BufferError, match="still exported.*nothing was published"):
            with pub.loan(4) as buf:
                frame = np.frombuffer(buf, dtype=np.uint8)
                frame[:] = 1
        assert pub.published == 0
        frame = None  # noqa: F841 - the view is gone now
        with pub.loan(4) as buf:   # the publisher is usable: the failed loan was discarded
            view = np.frombuffer(buf, dtype=np.uint8)
            view[:] = 2
            del view               # the documented way: no view outlives the block
        with pytest.raises(ValueError, match="released"):
            buf[0] = 9             # the loan's memoryview is released with the block
        pub.send(b"\x03")
        pub.close()
        out, err = proc.communicate(timeout=20)
        assert out.split() == ["02020202", "03"], out + err  # never a 01 sample
    finally:
        pub.close()


def test_publish_with_an_exported_view_keeps_the_loan_out_until_retried(name):
    with Publisher.create(name, slot_size=64, slots=4) as pub:
        loan = pub.loan(2)
        arr = np.frombuffer(loan.buf, dtype=np.uint8)
        arr[:] = 5
        with pytest.raises(BufferError, match="still exported"):
            loan.publish()
        assert pub.published == 0
        del arr
        loan.publish()
        assert pub.published == 1


def test_a_view_alive_at_release_of_a_sample_is_an_error(name, spawn):
    proc = spawn("import sys\nfrom interproc.shm import Publisher\n"
                 "pub = Publisher.create(sys.argv[1], slot_size=64, slots=4)\n"
                 "print('READY', flush=True)\n"
                 "while pub.subscribers == 0: pass\n"
                 "pub.send(b'abcd'); pub.send(b'efgh'); sys.stdin.readline(); pub.close()\n",
                 name, stdin=subprocess.PIPE)
    wait_for_line(proc, "READY")
    with Subscriber.open(name, timeout=10) as sub:
        sample = sub.recv(timeout=10)
        img = np.frombuffer(sample.buf, dtype=np.uint8)
        with pytest.raises(BufferError, match="still exported"):
            sample.release()
        assert not sample.released  # the slot stays held: the publisher cannot reuse it
        assert bytes(img) == b"abcd"
        del img
        sample.release()
        assert sample.released
        with pytest.raises(ValueError, match="released"):
            sample.buf[0]
        assert sub.recv_bytes(timeout=10) == b"efgh"
    proc.stdin.write("\n")
    proc.stdin.flush()
    proc.wait(10)
