"""One rule for "nobody there" (issue 10), the same for every kind:
``timeout=None`` -> ``NotFound`` at once; a timeout -> wait that long for the
name to appear, then ``Timeout``."""

from __future__ import annotations

import os
import socket

import pytest

import interproc
from conftest import wait_for_line
from interproc.mailslot import Mailslot
from interproc.pipes import NamedPipe
from interproc.shm import SharedMemory, Subscriber


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _openers(name):
    runtime = os.environ["INTERPROC_RUNTIME_DIR"]
    return {
        "pipe": lambda t: NamedPipe.connect(name, timeout=t),
        "unix": lambda t: interproc.connect(f"unix://{runtime}/{name}.sock", timeout=t),
        "tcp": lambda t: interproc.connect(f"tcp://127.0.0.1:{_free_port()}", timeout=t),
        "shm://": lambda t: interproc.connect(f"shm://{name}", timeout=t),
        "mailslot": lambda t: Mailslot.open(name, timeout=t),
        "serial": lambda t: interproc.connect(f"serial:///dev/interproc-nonexistent-{name}", timeout=t),
        "Subscriber.open": lambda t: Subscriber.open(name, timeout=t),
        "SharedMemory.open": lambda t: SharedMemory.open(name, timeout=t),
    }


KINDS = ["pipe", "unix", "tcp", "shm://", "mailslot", "serial", "Subscriber.open", "SharedMemory.open"]


@pytest.mark.parametrize("kind", KINDS)
def test_no_timeout_is_not_found_at_once(name, kind):
    if kind == "serial":
        pytest.importorskip("serial")
    with pytest.raises(interproc.NotFound):
        _openers(name)[kind](None)


@pytest.mark.parametrize("kind", KINDS)
def test_a_timeout_waits_then_raises_timeout(name, kind):
    if kind == "serial":
        pytest.importorskip("serial")
    with pytest.raises(interproc.Timeout) as info:
        _openers(name)[kind](0.2)
    assert not isinstance(info.value, interproc.NotFound)


def test_shared_memory_open_waits_for_the_name_to_appear(name, spawn):
    proc = spawn("import sys, time\nfrom interproc.shm import SharedMemory\n"
                 "print('STARTED', flush=True); time.sleep(0.5)\n"
                 "s = SharedMemory.create_or_open(sys.argv[1], 64, init=lambda b: b.__setitem__(0, 42))\n"
                 "print('CREATED', flush=True); sys.stdin.readline(); s.unlink(); s.close()\n",
                 name, stdin=__import__("subprocess").PIPE)
    wait_for_line(proc, "STARTED")
    with SharedMemory.open(name, timeout=20) as shm:  # before the fix: NotFound at once
        assert shm.buf[0] == 42
    proc.stdin.write("done\n")
    proc.stdin.flush()
    proc.wait(10)


AIO_KINDS = ["pipe", "unix", "tcp", "shm://", "mailslot", "serial"]


def _aio_address(name, kind):
    runtime = os.environ["INTERPROC_RUNTIME_DIR"]
    return {
        "pipe": f"pipe://{name}", "unix": f"unix://{runtime}/{name}.sock", "tcp": f"tcp://127.0.0.1:{_free_port()}",
        "shm://": f"shm://{name}", "mailslot": f"mailslot://{name}",
        "serial": f"serial:///dev/interproc-nonexistent-{name}",
    }[kind]


@pytest.mark.parametrize("kind", AIO_KINDS)
def test_asyncio_connect_follows_the_same_rule(name, kind):
    import asyncio

    import interproc.aio

    if kind == "serial":
        pytest.importorskip("serial")
    address = _aio_address(name, kind)

    async def attempt(timeout):
        return await asyncio.wait_for(interproc.aio.connect(address, timeout=timeout), 20)

    with pytest.raises(interproc.NotFound):
        asyncio.run(attempt(None))
    with pytest.raises(interproc.Timeout) as info:
        asyncio.run(attempt(0.2))
    assert not isinstance(info.value, interproc.NotFound)
