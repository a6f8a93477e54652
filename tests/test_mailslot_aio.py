"""asyncio mailslots: reads woken by writer processes, writes that wait without blocking the loop."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import interproc
import interproc.aio
from interproc import _address
from interproc.aio import Mailslot
from interproc._mailslot._aio import connect_address
from interproc.mailslot import Mailslot as SyncMailslot

from conftest import wait_for_line


async def _ticker(counter: list[int]) -> None:
    while True:
        await asyncio.sleep(0.01)
        counter[0] += 1


def _waiter_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "interproc-aio-mailslot"]


def _no_waiter_threads_left() -> bool:
    """True once every waiter thread has ended (one may still be returning
    from call_soon_threadsafe just after its future was resolved)."""
    for t in _waiter_threads():
        t.join(5)
    return not _waiter_threads()


def test_async_read_is_woken_by_a_writer_process(name, spawn):
    async def main():
        async with Mailslot.create(name) as slot:
            proc = spawn(
                "import sys, time; from interproc.mailslot import Mailslot\n"
                "time.sleep(0.3); Mailslot.write(sys.argv[1], b'wake up')\n",
                name,
            )
            ticks = [0]
            ticker = asyncio.create_task(_ticker(ticks))
            assert await slot.read(timeout=20) == b"wake up"
            ticker.cancel()
            assert ticks[0] > 3  # the loop kept running while the read waited
            proc.wait(10)
            with pytest.raises(interproc.Timeout):
                await slot.read(timeout=0.05)

    asyncio.run(main())
    assert _no_waiter_threads_left()


def test_many_async_reads_in_order(name, spawn):
    async def main():
        async with Mailslot.create(name, max_messages=8) as slot:
            proc = spawn(
                "import sys; from interproc.mailslot import Mailslot\n"
                "for i in range(200): Mailslot.write(sys.argv[1], b'%d' % i, timeout=30)\n",
                name,
            )
            got = [await slot.read(timeout=20) for _ in range(200)]
            assert got == [b"%d" % i for i in range(200)]
            proc.wait(10)

    asyncio.run(main())


def test_async_write_waits_for_space_without_blocking_the_loop(name):
    async def main():
        slot = SyncMailslot.create(name, max_messages=2)
        try:
            await Mailslot.write(name, b"1")
            await Mailslot.write(name, b"2")
            with pytest.raises(interproc.Timeout):
                await Mailslot.write(name, b"x", timeout=0.1)
            pending = asyncio.create_task(Mailslot.write(name, b"3", timeout=20))
            await asyncio.sleep(0.2)
            assert not pending.done()
            assert slot.read(timeout=1) == b"1"
            await asyncio.wait_for(pending, 10)
            assert [slot.read(timeout=1), slot.read(timeout=1)] == [b"2", b"3"]
        finally:
            slot.close()

    asyncio.run(main())
    assert _no_waiter_threads_left()


def test_cancelled_read_frees_its_waiter_thread(name):
    async def main():
        async with Mailslot.create(name) as slot:
            task = asyncio.create_task(slot.read())
            await asyncio.sleep(0.1)
            assert _waiter_threads()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            for _ in range(250):
                if not _waiter_threads():
                    break
                await asyncio.sleep(0.02)
            assert not _waiter_threads()  # woken and gone, not left asleep in futex_wait
            # The mailslot still works after the cancelled read.
            SyncMailslot.write(name, b"after")
            assert await slot.read(timeout=5) == b"after"

    asyncio.run(main())


def test_async_writer_channel(name):
    async def main():
        async with Mailslot.create(name) as slot:
            ch = await interproc.aio.connect(f"mailslot://{name}")
            with pytest.raises(interproc.NotFound):
                await connect_address(_address.parse(f"mailslot://{name}-none"))
            await ch.send(b"raw")
            await ch.send_obj([1, 2])
            assert isinstance(ch, interproc.aio.AsyncSendChannel) and not hasattr(ch, "recv")
            assert await slot.read(timeout=5) == b"raw"
            assert await slot.read(timeout=5) == b"[1,2]"
        with pytest.raises(interproc.ChannelClosed):
            await ch.send(b"gone")
        ch.close()
        with pytest.raises(interproc.NotFound):
            await Mailslot.write(name, b"gone")

    asyncio.run(main())


def test_blocking_read_honours_ctrl_c(name, spawn):
    proc = spawn(
        "import sys; from interproc.mailslot import Mailslot\n"
        "slot = Mailslot.create(sys.argv[1]); print('READING', flush=True)\n"
        "try:\n"
        "    slot.read()\n"
        "except KeyboardInterrupt:\n"
        "    print('INTERRUPTED', flush=True)\n"
        "slot.close()\n",
        name,
    )
    wait_for_line(proc, "READING")
    time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    assert wait_for_line(proc, "INTERRUPTED", timeout=10)
    assert proc.wait(10) == 0
