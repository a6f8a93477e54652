"""Kill harness: SIGKILL or SIGSTOP either side of each protocol at a random moment.

Every round runs a real peer process that sends (or receives) numbered,
acknowledged messages; the test process plays the other side.  At a random
moment the peer is killed (SIGKILL) or frozen (SIGSTOP, later SIGCONT, then
SIGKILL).  Invariants checked every round:

* no acknowledged message is lost or duplicated, and order holds;
* the survivor sees ``ChannelClosed`` (not ``Timeout``, not garbage) within
  its timeout once the peer is dead; a frozen peer is only a ``Timeout``;
* after ``gc`` (``interproc._registry.collect``) nothing of the round is
  left: no segment, socket or file.

Rounds per case: ``INTERPROC_KILL_ROUNDS`` (default 1); the seed is printed
on failure (``INTERPROC_KILL_SEED`` replays it).
"""

from __future__ import annotations

import os
import random
import signal
import shutil
import threading
import time

import pytest

import interproc
from conftest import wait_for_line
from interproc import _registry
from interproc.mailslot import Mailslot
from transport_helpers import short_tmpdir

ROUNDS = int(os.environ.get("INTERPROC_KILL_ROUNDS", "1"))
SEED = int(os.environ.get("INTERPROC_KILL_SEED", str(random.randrange(1 << 30))))
DEATH_TIMEOUT = 15.0  # the survivor must notice a dead peer within this

PEER = r"""
import sys, interproc
kind, role, job, address = sys.argv[1:5]
if role == "listen":
    lst = interproc.listen(address)
    print("READY", lst.address, flush=True)
    ch = lst.accept(timeout=20)
else:
    print("READY -", flush=True)
    ch = interproc.connect(address, timeout=20)
if job == "produce":
    i = 0
    while True:
        i += 1
        ch.send(str(i).encode())
        assert int(ch.recv(timeout=30)) == i
        print("ACKED", i, flush=True)
else:
    while True:
        m = ch.recv(timeout=30)
        print("GOT", int(m), flush=True)
        ch.send(m)
"""


class _Log:
    """Drains a peer's stdout while it runs (a full pipe would stall the peer)."""

    def __init__(self, proc) -> None:
        self.proc, self.lines = proc, []
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def numbers(self, tag: str) -> list[int]:
        self.proc.wait(10)
        self.thread.join(10)
        out = []
        for line in self.lines:
            parts = line.split()
            # the last line may be cut short by the kill
            if len(parts) == 2 and parts[0] == tag and parts[1].isdigit() and line.endswith("\n"):
                out.append(int(parts[1]))
        return out


def _address(kind: str, name: str, tmp: str) -> str:
    return {"pipe": f"pipe://{name}", "unix": f"unix://{tmp}/s", "tcp": "tcp://127.0.0.1:0",
            "shm": f"shm://{name}"}[kind]


def _nothing_stale(name: str) -> None:
    _registry.collect()
    left = [o for o in _registry.list_objects() if name in o.name]
    assert not left, f"stale after gc: {left}"


def _signal_later(proc, sig: int, delay: float) -> threading.Timer:
    t = threading.Timer(delay, lambda: proc.poll() is None and os.kill(proc.pid, sig))
    t.start()
    return t


def _round(kind, victim_role, sig, spawn, name, rng):
    tmp = short_tmpdir()
    lst = ch = None
    try:
        address = _address(kind, name, tmp)
        job = "produce" if victim_role == "listen" else "consume"
        proc = spawn(PEER, kind, victim_role, job, address)
        ready = wait_for_line(proc, "READY").split()[1]
        if victim_role == "listen":
            ch = interproc.connect(ready, timeout=10)
        else:
            lst = interproc.listen(address)
            proc_args = lst.address
            proc.kill(); proc.wait()  # the connector must learn the real address (tcp port)
            proc = spawn(PEER, kind, "connect", job, proc_args)
            wait_for_line(proc, "READY")
            ch = lst.accept(timeout=15)
        log = _Log(proc)
        delay = rng.uniform(0.05, 0.6)
        _signal_later(proc, sig, delay)
        stopped_seen = sent = False
        count = 0
        deadline = time.monotonic() + DEATH_TIMEOUT + 10
        while True:
            assert time.monotonic() < deadline, "the survivor never saw the peer go"
            try:
                if job == "produce":  # the peer produces, we consume and ack
                    m = ch.recv(timeout=DEATH_TIMEOUT if sig == signal.SIGKILL or stopped_seen else 1.0)
                    assert int(m) == count + 1, f"expected {count + 1}, got {m!r}"
                    count += 1
                    ch.send(m, timeout=5)
                else:  # we produce, the peer consumes and acks
                    if not sent:
                        ch.send(str(count + 1).encode(), timeout=5)
                        sent = True
                    m = ch.recv(timeout=DEATH_TIMEOUT if sig == signal.SIGKILL or stopped_seen else 1.0)
                    assert int(m) == count + 1
                    count += 1
                    sent = False
            except interproc.Timeout:
                assert sig == signal.SIGSTOP and not stopped_seen, "Timeout although the peer was dead"
                stopped_seen = True  # frozen: resume it, then kill it for good
                os.kill(proc.pid, signal.SIGCONT)
                _signal_later(proc, signal.SIGKILL, rng.uniform(0.05, 0.3))
            except interproc.ChannelClosed:
                break
        seen = log.numbers("ACKED" if job == "produce" else "GOT")
        # the peer's log: 1..k in order, nothing duplicated, nothing it saw acked is missing here
        assert seen == list(range(1, len(seen) + 1)), seen[:20]
        assert len(seen) <= count + 1 and count <= len(seen) + 1, (len(seen), count)
        return count
    finally:
        for o in (ch, lst):
            if o is not None:
                o.close()
        shutil.rmtree(tmp, ignore_errors=True)
        _nothing_stale(name)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP], ids=["KILL", "STOP"])
@pytest.mark.parametrize("victim", ["listen", "connect"])
@pytest.mark.parametrize("kind", ["pipe", "unix", "tcp", "shm"])
def test_channel_peer_killed_or_stopped(kind, victim, sig, spawn, name_factory):
    rng = random.Random(SEED)
    for r in range(ROUNDS):
        try:
            _round(kind, victim, sig, spawn, name_factory(), rng)
        except BaseException as exc:
            raise AssertionError(f"round {r} failed (INTERPROC_KILL_SEED={SEED}): {exc}") from exc


WRITER = r"""
import sys
from interproc.mailslot import Mailslot
i = 0
while True:
    i += 1
    Mailslot.write(sys.argv[1], str(i).encode(), timeout=10)
    print("WROTE", i, flush=True)
"""


@pytest.mark.timeout(90)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP], ids=["KILL", "STOP"])
def test_mailslot_writer_killed_or_stopped(sig, spawn, name_factory):
    rng = random.Random(SEED)
    for _ in range(ROUNDS):
        name = name_factory()
        slot = Mailslot.create(name, max_messages=64)
        try:
            proc = spawn(WRITER, name)
            log = _Log(proc)
            _signal_later(proc, sig, rng.uniform(0.05, 0.5))
            got, resumed = [], False
            while True:
                try:
                    got.append(int(slot.read(timeout=3)))
                except interproc.Timeout:
                    if sig == signal.SIGSTOP and not resumed:
                        resumed = True
                        os.kill(proc.pid, signal.SIGCONT)
                        _signal_later(proc, signal.SIGKILL, rng.uniform(0.05, 0.3))
                        continue
                    if proc.poll() is not None:
                        break
            wrote = log.numbers("WROTE")
            assert got == list(range(1, len(got) + 1)), got[:20]  # order, no duplicates
            assert len(got) >= len(wrote)  # every write that returned was delivered
        finally:
            slot.close()
            _nothing_stale(name)


PUBLISHER = r"""
import sys
from interproc.shm import Publisher
pub = Publisher.create(sys.argv[1], slot_size=64, slots=8)
print("READY", flush=True)
i = 0
while True:
    i += 1
    pub.send(str(i).encode(), timeout=30)
    print("PUBLISHED", i, flush=True)
"""


@pytest.mark.timeout(90)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP], ids=["KILL", "STOP"])
def test_pubsub_publisher_killed_or_stopped(sig, spawn, name_factory):
    from interproc.shm import Subscriber

    rng = random.Random(SEED)
    for _ in range(ROUNDS):
        name = name_factory()
        proc = spawn(PUBLISHER, name)
        wait_for_line(proc, "READY")
        sub = Subscriber.open(name, timeout=10)
        log = _Log(proc)
        try:
            _signal_later(proc, sig, rng.uniform(0.05, 0.5))
            got, resumed = [], False
            while True:
                try:
                    got.append(int(sub.recv_bytes(timeout=DEATH_TIMEOUT if resumed or sig == signal.SIGKILL else 1.0)))
                except interproc.Timeout:
                    assert sig == signal.SIGSTOP and not resumed, "Timeout although the publisher was dead"
                    resumed = True
                    os.kill(proc.pid, signal.SIGCONT)
                    _signal_later(proc, signal.SIGKILL, rng.uniform(0.05, 0.3))
                except interproc.ChannelClosed:
                    break
            published = log.numbers("PUBLISHED")
            assert got and got == list(range(got[0], got[0] + len(got))), got[:20]
            assert got[-1] >= (published[-1] if published else 0)
        finally:
            sub.close()
            _nothing_stale(name)


READER = r"""
import sys
from interproc.mailslot import Mailslot
slot = Mailslot.create(sys.argv[1], max_messages=64)
print("READY", flush=True)
while True:
    print("GOT", int(slot.read(timeout=30)), flush=True)
"""


@pytest.mark.timeout(90)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP], ids=["KILL", "STOP"])
def test_mailslot_reader_killed_or_stopped(sig, spawn, name_factory):
    rng = random.Random(SEED)
    for _ in range(ROUNDS):
        name = name_factory()
        proc = spawn(READER, name)
        wait_for_line(proc, "READY")
        log = _Log(proc)
        try:
            _signal_later(proc, sig, rng.uniform(0.05, 0.5))
            i, resumed = 0, False
            deadline = time.monotonic() + DEATH_TIMEOUT + 20
            while time.monotonic() < deadline:
                try:
                    Mailslot.write(name, str(i + 1).encode(), timeout=2)
                    i += 1
                except interproc.Timeout:  # the queue is full: the reader is frozen
                    assert sig == signal.SIGSTOP and not resumed, "Timeout although the reader was dead"
                    resumed = True
                    os.kill(proc.pid, signal.SIGCONT)
                    _signal_later(proc, signal.SIGKILL, rng.uniform(0.05, 0.3))
                except (interproc.NotFound, interproc.ChannelClosed):
                    break  # the reader is gone and so is its mailslot
            else:
                pytest.fail("writes to a dead reader's mailslot kept succeeding")
            got = log.numbers("GOT")
            assert got == list(range(1, len(got) + 1)), got[:20]  # order, no duplicates
            assert len(got) <= i
        finally:
            _nothing_stale(name)


SUBSCRIBER = r"""
import sys
from interproc.shm import Subscriber
sub = Subscriber.open(sys.argv[1], timeout=10)
print("READY", flush=True)
while True:
    print("GOT", int(sub.recv_bytes(timeout=30)), flush=True)
"""


@pytest.mark.timeout(90)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP], ids=["KILL", "STOP"])
def test_pubsub_subscriber_killed_or_stopped(sig, spawn, name_factory):
    from interproc.shm import Publisher

    rng = random.Random(SEED)
    for _ in range(ROUNDS):
        name = name_factory()
        pub = Publisher.create(name, slot_size=64, slots=8)
        try:
            proc = spawn(SUBSCRIBER, name)
            wait_for_line(proc, "READY")
            log = _Log(proc)
            _signal_later(proc, sig, rng.uniform(0.05, 0.5))
            i, resumed = 0, False
            while True:
                try:
                    pub.send(str(i + 1).encode(), timeout=DEATH_TIMEOUT if resumed or sig == signal.SIGKILL else 1.0)
                    i += 1
                except interproc.Timeout:
                    assert sig == signal.SIGSTOP and not resumed, "a dead subscriber blocked the publisher"
                    resumed = True
                    os.kill(proc.pid, signal.SIGCONT)
                    _signal_later(proc, signal.SIGKILL, rng.uniform(0.05, 0.3))
                if proc.poll() is not None:
                    # dead: the publisher must go on without it
                    for _ in range(50):
                        pub.send(b"0", timeout=DEATH_TIMEOUT)
                    break
            got = log.numbers("GOT")
            assert got == list(range(1, len(got) + 1)), got[:20]
        finally:
            pub.close()
            _nothing_stale(name)
