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


# The CI crash: a refused release() used to release `buf` anyway (numpy's
# frombuffer takes its own memoryview of buf's managed buffer, so buf.release()
# succeeded), and the next release() found the slot's exporter again through
# buf's borrowed base pointer after `del img` had freed it -- a use after free
# that became a double free (and a lost reference on the subscriber's core)
# when the freed block sat in a full pymalloc pool.  Filling the pool makes it
# happen every time; before the fix this child died of SIGSEGV.
REFUSED_THEN_RELEASED = """
import sys
import numpy as np
from interproc.shm import Publisher, Subscriber
pub = Publisher.create(sys.argv[1], slot_size=64, slots=4)
sub = Subscriber.open(sys.argv[1], timeout=10)
keep = []
for i in range(20):
    pub.send(b"abcd")
    sample = sub.recv(timeout=10)
    img = np.frombuffer(sample.buf, dtype=np.uint8)
    try:
        sample.release()
    except BufferError:
        pass
    else:
        sys.exit("release() with a numpy view alive was not refused")
    keep.append([bytes(10) for _ in range(300)])  # fill the exporter's pool (48 B blocks)
    del img
    sample.release()
    del sample
    keep.append([bytes(10) for _ in range(3)])
sub.close()
pub.close()
print("SURVIVED", flush=True)
"""


def test_release_refused_then_granted_in_a_full_allocator_pool_does_not_crash(name, spawn):
    out = spawn.run(REFUSED_THEN_RELEASED, name, timeout=30)
    assert out.split() == ["SURVIVED"]


def test_a_refused_release_changes_nothing(name):
    with Publisher.create(name, slot_size=64, slots=4) as pub, Subscriber.open(name) as sub:
        pub.send(b"abcd")
        sample = sub.recv(timeout=10)
        buf = sample.buf
        img = np.frombuffer(buf, dtype=np.uint8)
        with pytest.raises(BufferError, match="still exported"):
            sample.release()
        assert sample.buf is buf and bytes(buf) == b"abcd"  # buf was not released by the refusal
        assert buf[0] == ord("a") and not sample.released
        del img
        sample.release()
        with pytest.raises(ValueError, match="released"):
            buf[0]


@pytest.mark.parametrize("make_view", [
    lambda s: s.buf[1:],                     # a slice shares buf's managed buffer
    lambda s: memoryview(s.buf),             # so does a memoryview of buf
    lambda s: memoryview(s.buf.obj),         # a view of the slot's exporter itself
    lambda s: np.frombuffer(s.buf[:2], dtype=np.uint8),
], ids=["slice", "memoryview", "exporter", "numpy-of-slice"])
def test_every_kind_of_view_keeps_the_sample_held(name, make_view):
    with Publisher.create(name, slot_size=64, slots=4) as pub, Subscriber.open(name) as sub:
        pub.send(b"abcd")
        sample = sub.recv(timeout=10)
        view = make_view(sample)
        with pytest.raises(BufferError, match="still exported"):
            sample.release()
        assert bytes(view[:1]) == b"a" or bytes(view[:1]) == b"b"
        del view
        sample.release()
        assert sample.released


def test_buf_released_by_hand_with_a_numpy_view_alive_still_refuses(name):
    with Publisher.create(name, slot_size=64, slots=4) as pub, Subscriber.open(name) as sub:
        pub.send(b"abcd")
        sample = sub.recv(timeout=10)
        img = np.frombuffer(sample.buf, dtype=np.uint8)
        sample.buf.release()       # numpy's own memoryview still holds the slot
        with pytest.raises(BufferError, match="still exported"):
            sample.release()
        del img
        sample.release()
        assert sample.released


def test_a_view_outliving_a_dropped_sample_and_the_subscriber_stays_readable(name):
    # Dropping a sample gives its slot back regardless; the mapping stays until
    # the last view is gone, so the view reads memory, never an unmapped page.
    with Publisher.create(name, slot_size=64, slots=4) as pub:
        sub = Subscriber.open(name)
        pub.send(b"abcd")
        sample = sub.recv(timeout=10)
        img = np.frombuffer(sample.buf, dtype=np.uint8)
        del sample                 # dropped, not released: no BufferError, the slot is given back
        sub.close()
        assert len(img) == 4 and int(img.sum()) >= 0
        del img
