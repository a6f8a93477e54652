"""Win32 named-pipe semantics checked across real processes (issue 10, Defects).

* a short read of a message-mode pipe returns the first part and says more
  remains (ERROR_MORE_DATA); the next read returns the rest, nothing is lost;
* an empty write returns at once and wakes no reader;
* a message write with a timeout is all or nothing; a byte write that times
  out says how many bytes went (WriteFile's lpNumberOfBytesWritten);
* threads blocked in accept() get clients in the order they started waiting.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

import interproc
from conftest import SRC, wait_for_line
from interproc._naming import object_path
from interproc.pipes import NamedPipe, pipe, popen_with_pipe

CHILD_ENV = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))

# Serves one client: sends the messages given as hex arguments, then echoes.
SENDER = """
import sys
from interproc.pipes import NamedPipe
name, mode = sys.argv[1], sys.argv[2]
srv = NamedPipe.serve(name, mode=mode)
print("READY", flush=True)
ch = srv.accept(timeout=20)
for hexed in sys.argv[3:]:
    ch.send(bytes.fromhex(hexed))
print("SENT", flush=True)
for msg in ch:
    if msg == b"quit":
        break
    ch.send(msg)
ch.close(); srv.close()
"""


def _stop(proc, name):
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)
    try:
        os.unlink(object_path("pipe", name))
    except FileNotFoundError:
        pass


def _sender(spawn, name, *messages, mode="message"):
    proc = spawn(SENDER, name, mode, *(m.hex() for m in messages))
    wait_for_line(proc, "READY")
    return proc


def test_short_read_of_a_message_returns_the_first_part_and_says_more(spawn, name):
    first, second = b"hello world", os.urandom(512)
    proc = _sender(spawn, name, first, second, b"next")
    try:
        with NamedPipe.connect(name, timeout=10) as ch:
            part, more = ch.read_part(4, timeout=10)
            assert (part, more) == (b"hell", True)  # ERROR_MORE_DATA
            # The rest is readable from another thread, and nothing more.
            got = []
            t = threading.Thread(target=lambda: got.append(ch.read_part(100, timeout=10)))
            t.start()
            t.join(20)
            assert got == [(b"o world", False)]
            # A 1-byte read of a 512-byte message: 512 reads, the last says done.
            pieces = []
            while True:
                part, more = ch.read_part(1, timeout=10)
                pieces.append(part)
                if not more:
                    break
            assert b"".join(pieces) == second and len(pieces) == 512
            # read(n) is the same read, without the flag; the channel is in step.
            assert ch.read(2, timeout=10) == b"ne"
            assert ch.recv(timeout=10) == b"xt"  # recv() takes the rest of the message
            ch.send(b"echo")
            assert ch.recv(timeout=10) == b"echo"
            ch.send(b"quit")
    finally:
        _stop(proc, name)


def test_message_mode_write_is_one_message(spawn, name):
    proc = _sender(spawn, name)
    try:
        with NamedPipe.connect(name, timeout=10) as ch:
            assert ch.write(b"abc") == 3  # WriteFile on a message pipe: one message
            assert ch.read(10, timeout=10) == b"abc"
            ch.send(b"quit")
    finally:
        _stop(proc, name)


WRITE_EMPTY = """
import sys, os
from interproc.pipes import NamedPipe
ch = NamedPipe.connect(sys.argv[1], timeout=10)
n = ch.write(b"")
print("WROTE", n, flush=True)
ch.write(b"x")
print("DONE", flush=True)
sys.stdin.read()
"""


def test_empty_write_on_a_byte_mode_pipe_returns_at_once_and_wakes_nobody(spawn, name):
    with NamedPipe.serve(name, mode="byte") as srv:
        proc = spawn(WRITE_EMPTY, name, stdin=subprocess.PIPE)
        with srv.accept(timeout=10) as peer:
            assert wait_for_line(proc, "WROTE") == "WROTE 0"
            wait_for_line(proc, "DONE")
            assert peer.read(10, timeout=10) == b"x"  # the empty write left nothing
            with pytest.raises(interproc.Timeout):
                peer.read(10, timeout=0.2)
        proc.stdin.close()
        proc.wait(10)


def test_empty_write_on_an_anonymous_pipe_returns_at_once():
    code = ("from interproc.pipes import pipe_from_env\n"
            "w = pipe_from_env(); print('WROTE', w.write(b''), flush=True); w.write(b'y'); w.close()\n")
    proc, r = popen_with_pipe([sys.executable, "-c", code], child="write", stdout=subprocess.PIPE,
                              env=CHILD_ENV, text=True)
    with r:
        out, _ = proc.communicate(timeout=20)
        assert out.strip() == "WROTE 0"
        assert r.read(10, timeout=10) == b"y"
        assert r.read(10, timeout=10) == b""  # EOF, and the empty write added nothing
    r2, w2 = pipe()
    with r2, w2:
        assert w2.write(b"") == 0
        assert w2.write(memoryview(b"")) == 0
        with pytest.raises(interproc.Timeout):
            r2.read(1, timeout=0.1)


# A client that connects and then reads nothing until told to.
SLOW_READER = """
import sys
from interproc.pipes import NamedPipe
ch = NamedPipe.connect(sys.argv[1], timeout=10)
print("CONNECTED", flush=True)
sys.stdin.readline()
if ch.mode == "message":
    for msg in ch:
        print(len(msg), msg[:8].hex(), flush=True)
else:
    total = 0
    while True:
        chunk = ch.read(1 << 20, timeout=10)
        if not chunk:
            break
        total += len(chunk)
    print("TOTAL", total, flush=True)
"""


def test_message_write_with_timeout_is_all_or_nothing(spawn, name):
    big = b"\xab" * (8 << 20)
    with NamedPipe.serve(name, mode="message") as srv:
        proc = spawn(SLOW_READER, name, stdin=subprocess.PIPE)
        with srv.accept(timeout=10) as peer:
            wait_for_line(proc, "CONNECTED")
            peer.send(b"\x01" * 1000)
            with pytest.raises(interproc.Timeout, match="nothing was sent"):
                peer.send(big, timeout=0)   # cannot go whole: refused, nothing written
            assert not peer.closed
            peer.send(b"\x02" * 50_000, timeout=0)  # fits: goes whole
            peer.send(b"\x03" * 10)         # the channel is still in step
            proc.stdin.write("go\n")
            proc.stdin.flush()
            peer.close()
            out, err = proc.communicate(timeout=20)
        assert out.split() == ["1000", "0101010101010101", "50000", "0202020202020202", "10", "03030303030303030303"[:16]], err


def test_byte_write_with_timeout_reports_bytes_written(spawn, name):
    big = b"\xcd" * (8 << 20)
    with NamedPipe.serve(name, mode="byte") as srv:
        proc = spawn(SLOW_READER, name, stdin=subprocess.PIPE)
        with srv.accept(timeout=10) as peer:
            wait_for_line(proc, "CONNECTED")
            with pytest.raises(interproc.Timeout) as info:
                peer.write(big, timeout=0)
            written = info.value.written
            assert 0 < written < len(big)
            proc.stdin.write("go\n")
            proc.stdin.flush()
            peer.write(b"tail", timeout=10)  # the stream is in step: written bytes, then these
            peer.close()
            out, err = proc.communicate(timeout=20)
        assert out.split() == ["TOTAL", str(written + 4)], err


CLIENT = """
import sys
from interproc.pipes import NamedPipe
ch = NamedPipe.connect(sys.argv[1], timeout=10)
ch.send(sys.argv[2].encode())
ch.recv(timeout=10)
"""


def test_longest_waiting_accept_gets_the_next_client(spawn, name):
    with NamedPipe.serve(name) as srv:
        got: dict[str, bytes] = {}

        def waiter(label):
            with srv.accept(timeout=20) as ch:
                got[label] = ch.recv(timeout=10)
                ch.send(b"ok")

        threads = []
        for label in "ABCD":
            t = threading.Thread(target=waiter, args=(label,))
            t.start()
            threads.append(t)
            deadline = time.monotonic() + 10
            while len(srv._line) < len(threads) and time.monotonic() < deadline:
                time.sleep(0.01)  # let this thread queue in accept() before the next one starts
        for i in range(4):
            out = spawn.run(CLIENT, name, f"client{i}")
            assert out == ""
        for t in threads:
            t.join(20)
        assert got == {"A": b"client0", "B": b"client1", "C": b"client2", "D": b"client3"}
