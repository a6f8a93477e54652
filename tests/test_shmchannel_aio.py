"""interproc.aio over shm://, against real processes."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from conftest import wait_for_line
import interproc
from interproc import ChannelClosed, Timeout
from interproc.aio import ShmChannel, ShmListener
from interproc._shmchannel import _aio as aio_shm

ASYNC_ECHO = """
import asyncio, sys
from interproc._shmchannel import _aio as _shm

async def main():
    ch = await _shm.connect(sys.argv[1], timeout=10)
    async with ch:
        async for msg in ch:
            await ch.send(msg)

asyncio.run(main())
"""


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_async_echo_with_concurrent_send_and_recv(spawn, name):
    async def main():
        async with await aio_shm.listen(f"shm://{name}?capacity=64KiB") as lst:
            assert isinstance(lst, ShmListener)
            child = spawn(ASYNC_ECHO, f"shm://{name}")
            ch = await lst.accept(timeout=10)
            assert isinstance(ch, ShmChannel)
            n = 2000
            msgs = [os.urandom(i % 5000) for i in range(n)]

            async def sender():
                for m in msgs:  # more than the ring holds: send must wait for space
                    await ch.send(m, timeout=10)

            async def receiver():
                return [await ch.recv(timeout=10) for _ in range(n)]

            _, got = await asyncio.gather(sender(), receiver())
            assert got == msgs
            ch.close()
            await asyncio.get_running_loop().run_in_executor(None, child.wait, 10)

    run(main())


def test_async_recv_wakes_timeout_and_cancel(spawn, name):
    code = """
import sys, time, interproc
ch = interproc.connect(sys.argv[1], timeout=10)
print("READY", flush=True)
sys.stdin.readline()
time.sleep(0.3)
ch.send(b"woken")
ch.recv()
"""
    import subprocess

    async def main():
        async with await aio_shm.listen(f"shm://{name}") as lst:
            child = spawn(code, f"shm://{name}", stdin=subprocess.PIPE)
            ch = await lst.accept(timeout=10)
            with pytest.raises(Timeout):
                await ch.recv(timeout=0.1)
            task = asyncio.create_task(ch.recv())
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # While we await, the loop runs other things and burns no CPU.
            child.stdin.write("go\n")
            child.stdin.flush()
            cpu0, ticks = time.process_time(), 0

            async def ticker():
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            t = asyncio.create_task(ticker())
            assert await ch.recv(timeout=10) == b"woken"
            t.cancel()
            assert ticks >= 5
            assert time.process_time() - cpu0 < 0.25  # no busy polling
            await ch.send(b"bye")
            ch.close()
            await asyncio.get_running_loop().run_in_executor(None, child.wait, 10)

    run(main())


def test_async_peer_killed(spawn, name):
    code = """
import sys, time, interproc
ch = interproc.connect(sys.argv[1], timeout=10)
print("READY", flush=True)
time.sleep(60)
"""

    async def main():
        async with await aio_shm.listen(f"shm://{name}") as lst:
            child = spawn(code, f"shm://{name}")
            ch = await lst.accept(timeout=10)
            await asyncio.get_running_loop().run_in_executor(None, wait_for_line, child, "READY")
            asyncio.get_running_loop().call_later(0.2, os.kill, child.pid, signal.SIGKILL)
            with pytest.raises(ChannelClosed):
                await ch.recv(timeout=20)
            ch.close()
            child.wait(timeout=10)

    run(main())


def test_async_accept_timeout_and_cancel(name):
    async def main():
        async with await aio_shm.listen(f"shm://{name}") as lst:
            with pytest.raises(Timeout):
                await lst.accept(timeout=0.05)
            task = asyncio.create_task(lst.accept())
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    run(main())


def test_aio_connect_dispatches_shm(spawn, name):
    import interproc.aio

    async def main():
        lst = await interproc.aio.listen(f"shm://{name}")
        async with lst:
            child = spawn(ASYNC_ECHO, f"shm://{name}")
            ch = await lst.accept(timeout=10)
            async with ch:
                await ch.send_obj({"n": 1})
                assert await ch.recv_obj(timeout=10) == {"n": 1}
            await asyncio.get_running_loop().run_in_executor(None, child.wait, 10)
        c = None
        with pytest.raises(interproc.NotFound):
            c = await interproc.aio.connect(f"shm://{name}")
        assert c is None

    run(main())


def test_one_loop_serves_many_shm_clients_without_threads(spawn, name):
    """Waits go on the event loop (the channel's doorbell fd), not a thread per channel."""
    import threading

    code = """
import sys, time, interproc
ch = interproc.connect(sys.argv[1], timeout=10)
i = int(sys.argv[2])
for k in range(50):
    time.sleep(0.002 * (k % 3))   # the server sleeps between some messages
    ch.send(b"%d:%d" % (i, k))
    assert ch.recv(timeout=10) == b"ok%d" % k
ch.close()
"""

    async def main():
        async with await aio_shm.listen(f"shm://{name}") as lst:
            children = [spawn(code, f"shm://{name}", str(i)) for i in range(6)]
            chans = [await lst.accept(timeout=10) for _ in children]
            threads_before = threading.active_count()
            peak = threads_before

            async def serve(ch):
                nonlocal peak
                k = 0
                async for msg in ch:
                    assert msg.endswith(b":%d" % k)
                    peak = max(peak, threading.active_count())
                    await ch.send(b"ok%d" % k, timeout=10)
                    k += 1
                ch.close()
                return k

            counts = await asyncio.gather(*(serve(ch) for ch in chans))
            assert counts == [50] * 6
            assert peak == threads_before  # no waiting thread was started
            for child in children:
                await asyncio.get_running_loop().run_in_executor(None, child.wait, 10)

    run(main())
