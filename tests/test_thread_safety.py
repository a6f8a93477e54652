"""Several threads on one channel: whole messages or a clear error, never a mix.

Framed streams (tcp://, unix://, pipes) take a lock per direction, so any
number of threads may send and receive; shm:// has one producer and one
consumer per ring and refuses a second concurrent sender or receiver.
"""

from __future__ import annotations

import threading

import pytest

import interproc
from conftest import wait_for_line

RECEIVER = """
import sys, interproc
lst = interproc.listen("tcp://127.0.0.1:0")
print("ADDRESS", lst.address, flush=True)
count, bad = int(sys.argv[1]), 0
with lst.accept(timeout=20) as ch:
    for _ in range(count):
        msg = ch.recv(timeout=30)
        tag = msg[:1]
        if len(msg) != int(sys.argv[2]) or msg.count(tag) != len(msg):
            bad += 1
    ch.send(str(bad).encode())
print("BAD", bad, flush=True)
"""


def test_four_threads_sending_on_one_tcp_channel_never_interleave(spawn):
    per_thread, size = 12, 1024 * 1024
    proc = spawn(RECEIVER, str(4 * per_thread), str(size))
    address = wait_for_line(proc, "ADDRESS").split()[1]
    errors = []
    with interproc.connect(address, timeout=10) as ch:
        def sender(tag: bytes) -> None:
            try:
                for _ in range(per_thread):
                    ch.send(tag * size, timeout=30)
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=sender, args=(bytes([65 + i]),)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert ch.recv(timeout=30) == b"0", "the receiver saw interleaved messages"
    assert wait_for_line(proc, "BAD") == "BAD 0"


def test_shm_too_large_send_keeps_the_other_threads_sender_claim(name):
    lst = interproc.listen(f"shm://{name}?capacity=65536")
    try:
        box = {}
        t = threading.Thread(target=lambda: box.setdefault("ch", lst.accept(timeout=10)))
        t.start()
        client = interproc.connect(f"shm://{name}", timeout=10)
        t.join()
        server = box["ch"]
        with client, server:
            chunk = b"a" * 1000
            while True:  # fill the ring (nobody reads)
                try:
                    client.send(chunk, timeout=0)
                except interproc.Timeout:
                    break
            blocked = threading.Thread(target=lambda: _swallow(client.send, b"A" * 1000, timeout=3))
            blocked.start()  # sleeps inside send, holding the ring's single-sender claim
            try:
                import time
                for _ in range(500):  # until the blocked thread holds the claim
                    try:
                        client.send(b"probe", timeout=0)
                    except ValueError as exc:
                        assert "already sending" in str(exc)
                        break
                    except interproc.Timeout:
                        time.sleep(0.01)
                else:
                    pytest.fail("the blocked sender never claimed the ring")
                with pytest.raises(interproc.MessageTooLarge):
                    client.send(b"x" * (1 << 20))
                # the too-large failure must not have cleared the other thread's claim
                with pytest.raises(ValueError, match="already sending"):
                    client.send(b"second sender", timeout=0)
            finally:
                blocked.join()
    finally:
        lst.close()


def _swallow(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except interproc.InterprocError:
        pass
