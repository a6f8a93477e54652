"""The mailslot battery of test_mailslot.py, over nats:// (real nats-server, real writer processes).

Same checks where NATS keeps the local promise (content, order per writer,
empty and large messages, a read woken by a later write, close ending a
blocked read, iteration); where it cannot (a full queue), the NATS rule is
checked instead: the reader drops and counts, the writer never waits.
"""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("nats")

from nats_server import nats_server  # noqa: E402,F401  (the fixture)
from test_mailslot import check_payload  # noqa: E402

import interproc  # noqa: E402
from interproc import _nats  # noqa: E402
from interproc.mailslot import Mailslot, Pending  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_connections():
    yield
    _nats.close_all()


WRITER = """
import sys
from interproc.mailslot import Mailslot
url, name, writer, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for i in range(count):
    Mailslot.write(name, f"{writer}:{i}:".encode() + bytes([(writer * 31 + i) % 251]) * (i % 97), scope=url, timeout=30)
print("DONE", flush=True)
"""


def _wait_pending(slot, count: int, timeout: float = 10) -> Pending:
    deadline = time.monotonic() + timeout
    while slot.pending().count < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return slot.pending()


def test_write_from_other_process_and_pending(nats_server, name, spawn):
    url = nats_server.url
    with Mailslot.create(name, max_message_size=1024, scope=url) as slot:
        assert slot.pending() == Pending(0, None)
        spawn.run(
            "import sys; from interproc.mailslot import Mailslot\n"
            "u = sys.argv[2]\n"
            "Mailslot.write(sys.argv[1], b'hello', scope=u); Mailslot.write(sys.argv[1], b'', scope=u)\n"
            "Mailslot.write(sys.argv[1], bytearray(1024), scope=u)\n",
            name, url,
        )
        assert _wait_pending(slot, 3) == Pending(3, 5)  # a writer that exits has flushed what it wrote
        assert slot.read(timeout=5) == b"hello"
        assert slot.pending() == Pending(2, 0)
        assert slot.read(timeout=5) == b""
        assert slot.read(timeout=5) == bytes(1024)
        with pytest.raises(interproc.Timeout):
            slot.read(timeout=0.05)
        with pytest.raises(interproc.Timeout):
            slot.read_nowait()


def test_read_wakes_when_a_writer_process_writes(nats_server, name, spawn):
    with Mailslot.create(name, scope=nats_server.url) as slot:
        proc = spawn(
            "import sys, time; from interproc.mailslot import Mailslot\n"
            "time.sleep(0.3); Mailslot.write(sys.argv[1], b'late', scope=sys.argv[2])\n",
            name, nats_server.url,
        )
        assert slot.read(timeout=20) == b"late"
        proc.wait(10)


def test_many_writer_processes_in_order_per_writer(nats_server, name, spawn):
    writers, count = 8, 300
    with Mailslot.create(name, scope=nats_server.url, max_messages=writers * count) as slot:
        procs = [spawn(WRITER, nats_server.url, name, str(w), str(count)) for w in range(writers)]
        seen = {w: -1 for w in range(writers)}
        for _ in range(writers * count):
            w, i = check_payload(slot.read(timeout=20))
            assert i == seen[w] + 1, f"writer {w}: message {i} after {seen[w]}"
            seen[w] = i
        assert all(v == count - 1 for v in seen.values())
        for p in procs:
            assert p.wait(10) == 0
        assert slot.pending().count == 0 and slot.dropped == 0


def test_a_full_reader_drops_and_counts_and_the_writer_never_waits(nats_server, name):
    with Mailslot.create(name, scope=nats_server.url, max_messages=3, max_message_size=10) as slot:
        for i in range(6):
            Mailslot.write(name, f"m{i}".encode(), scope=nats_server.url, timeout=0.5)
        Mailslot.write(name, b"x" * 11, scope=nats_server.url)  # over this reader's limit
        _nats.flush_all()
        deadline = time.monotonic() + 10
        while slot.dropped + slot.rejected < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (slot.dropped, slot.rejected) == (3, 1)
        assert [slot.read(timeout=1) for _ in range(3)] == [b"m0", b"m1", b"m2"]  # the oldest kept


def test_large_messages_and_iteration(nats_server, name):
    with Mailslot.create(name, scope=nats_server.url, max_message_size=100_000) as slot:
        for i in range(20):
            msg = bytes([i]) * (1000 + 4097 * i)
            Mailslot.write(name, msg, scope=nats_server.url)
            Mailslot.write(name, memoryview(msg)[:7], scope=nats_server.url)
            assert slot.read(timeout=5) == msg
            assert slot.read(timeout=5) == msg[:7]
        Mailslot.write(name, b"a", scope=nats_server.url)
        assert next(iter(slot)) == b"a"


def test_close_from_another_thread_ends_a_blocked_read(nats_server, name):
    slot = Mailslot.create(name, scope=nats_server.url)
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            slot.read(timeout=20)
        except Exception as exc:
            errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.2)
    slot.close()
    t.join(10)
    assert not t.is_alive()
    assert errors and isinstance(errors[0], (interproc.ChannelClosed, interproc.HandleClosed))
