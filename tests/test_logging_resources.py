"""ResourceWarning for handles dropped unclosed, and connection events on the
``interproc`` logger (issue 10).  The peers are real processes."""

from __future__ import annotations

import gc
import logging
import os
import warnings

import pytest

import interproc
from conftest import wait_for_line
from interproc._naming import object_path
from interproc.pipes import NamedPipe
from interproc.mailslot import Mailslot
from interproc.shm import SharedMemory
from interproc.sync import Mutex

CLIENT = """
import sys
from interproc.pipes import NamedPipe
ch = NamedPipe.connect(sys.argv[1], timeout=10)
ch.send(b"hello")
ch.close()
"""

GARBAGE = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.recv(4096)                    # the greeting
s.sendall(b"\\xff" * 64)        # then bytes that are no hello
s.recv(4096)
"""


def _warnings_of(fn):
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always", ResourceWarning)
        fn()
        gc.collect()
    return [str(w.message) for w in got if issubclass(w.category, ResourceWarning)]


def test_dropped_handles_warn_closed_ones_do_not(name, spawn):
    def drop_segment():
        SharedMemory.create(name, 64)  # dropped: the last handle, so the name goes too

    assert any(f"unclosed SharedMemory {name!r}" in w for w in _warnings_of(drop_segment))

    def closed_segment():
        with SharedMemory.create(name, 64):
            pass

    assert _warnings_of(closed_segment) == []

    srv = NamedPipe.serve(name)
    try:
        proc = spawn(CLIENT, name)
        holder = []

        def drop_channel():
            ch = srv.accept(timeout=10)
            assert ch.recv(timeout=10) == b"hello"
            holder.append(repr(ch))

        warned = _warnings_of(drop_channel)
        assert any(w.startswith("unclosed PipeChannel pipe") for w in warned), warned
        proc.wait(10)
    finally:
        srv.close()

    def drop_server():
        NamedPipe.serve(name)

    assert any("unclosed <PipeServer" in w for w in _warnings_of(drop_server))

    def drop_mailslot_and_mutex():
        Mailslot.create(name)
        Mutex(name + ".m")

    warned = _warnings_of(drop_mailslot_and_mutex)
    assert f"unclosed Mailslot {name!r}" in warned and f"unclosed mutex {name + '.m'!r}" in warned, warned


def test_accept_and_peer_gone_are_logged(name, spawn, caplog):
    caplog.set_level(logging.DEBUG, logger="interproc")
    with NamedPipe.serve(name) as srv:
        proc = spawn(CLIENT, name)
        with srv.accept(timeout=10) as ch:
            assert ch.recv(timeout=10) == b"hello"
            with pytest.raises(interproc.ChannelClosed):
                ch.recv(timeout=10)
        proc.wait(10)
    messages = [r.getMessage() for r in caplog.records if r.name == "interproc"]
    assert any(f"accepted pid {proc.pid}" in m for m in messages), messages
    assert any("the peer closed the channel" in m for m in messages), messages


def test_handshake_failure_is_a_logged_warning(name, spawn, caplog):
    caplog.set_level(logging.WARNING, logger="interproc")
    with NamedPipe.serve(name) as srv:
        proc = spawn(GARBAGE, object_path("pipe", name))
        with pytest.raises(interproc.ProtocolError):
            srv.accept(timeout=10)
        proc.kill()
        proc.wait(10)
    warned = [r for r in caplog.records if r.name == "interproc" and r.levelno == logging.WARNING]
    assert any("handshake failed" in r.getMessage() for r in warned), [r.getMessage() for r in caplog.records]
