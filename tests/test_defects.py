"""Issue 10 defects that need no second process: one rule for ``timeout=``,
keyword typos refused by ``interproc.aio``."""

from __future__ import annotations

import asyncio

import pytest

import interproc
import interproc.aio
from interproc.mailslot import Mailslot
from interproc.pipes import NamedPipe, pipe
from interproc.shm import SharedMemory


def _calls(name):
    """Blocking calls of several kinds, each taking ``timeout=``."""
    return {
        "pipe.connect": lambda t: NamedPipe.connect(name, timeout=t),
        "connect(unix)": lambda t: interproc.connect(f"unix:///tmp/{name}.sock", timeout=t),
        "SharedMemory.open": lambda t: SharedMemory.open(name, timeout=t),
        "Mailslot.open": lambda t: Mailslot.open(name, timeout=t),
        "connect(shm)": lambda t: interproc.connect(f"shm://{name}", timeout=t),
    }


@pytest.mark.parametrize("bad", ["3", True, b"1", [1]])
@pytest.mark.parametrize("kind", ["pipe.connect", "connect(unix)", "SharedMemory.open", "Mailslot.open",
                                  "connect(shm)"])
def test_timeout_must_be_a_number(name, kind, bad):
    with pytest.raises(TypeError, match="timeout must be a number of seconds or None"):
        _calls(name)[kind](bad)


@pytest.mark.parametrize("bad", [-1, float("nan")])
def test_timeout_must_not_be_negative(name, bad):
    with pytest.raises(ValueError, match="timeout must be >= 0"):
        NamedPipe.connect(name, timeout=bad)


def test_timeout_checked_on_channel_calls_and_mailslots(name):
    r, w = pipe()
    with r, w:
        with pytest.raises(TypeError, match="timeout"):
            r.recv(timeout="3")
        with pytest.raises(TypeError, match="timeout"):
            w.send(b"x", timeout=True)
    with Mailslot.create(name) as slot:
        with pytest.raises(TypeError, match="timeout"):
            slot.read(timeout="0.1")


@pytest.mark.parametrize("address", ["pipe://{n}", "unix:///tmp/{n}.sock", "tcp://127.0.0.1:1",
                                     "mailslot://{n}", "serial:///dev/nonexistent-{n}"])
def test_aio_connect_refuses_unknown_keywords(name, address):
    async def main():
        await asyncio.wait_for(interproc.aio.connect(address.format(n=name), timout=3), 10)

    with pytest.raises(TypeError, match="timout"):
        asyncio.run(main())


@pytest.mark.parametrize("address", ["pipe://{n}", "unix:///tmp/{n}.sock", "tcp://127.0.0.1:0"])
def test_aio_listen_refuses_unknown_keywords(name, address):
    async def main():
        await interproc.aio.listen(address.format(n=name), max_instancs=3)

    with pytest.raises(TypeError, match="max_instancs"):
        asyncio.run(main())
