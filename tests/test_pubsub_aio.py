"""interproc.aio.Publisher / Subscriber across real processes: waits go on the
event loop (a doorbell fd per waiting side), not on threads."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading

import pytest

from conftest import wait_for_line
from interproc import ChannelClosed, Timeout
from interproc.aio import Publisher, Subscriber

PUBLISHER = """
import sys, time
from interproc.shm import Publisher
pub = Publisher.create(sys.argv[1], 64, 8)
print("READY", flush=True)
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == "send":
        for i in range(int(cmd[1])):
            pub.send(b"s%d" % i, timeout=10)
            time.sleep(0.001 * (i % 3))
    elif cmd[0] == "close":
        pub.close()
        print("CLOSED", flush=True)
    elif cmd[0] == "hang":
        print("HANGING", flush=True)
        time.sleep(60)
"""


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def _cmd(child: subprocess.Popen, line: str) -> None:
    child.stdin.write(line + "\n")
    child.stdin.flush()


async def _wait_child(child: subprocess.Popen) -> None:
    await asyncio.get_running_loop().run_in_executor(None, child.wait, 10)


def test_async_subscriber_wakes_on_samples_from_another_process(spawn, name):
    async def main():
        child = spawn(PUBLISHER, name, stdin=subprocess.PIPE)
        await asyncio.get_running_loop().run_in_executor(None, wait_for_line, child, "READY")
        async with await Subscriber.open(name, timeout=10) as sub:
            with pytest.raises(Timeout):
                await sub.recv(timeout=0.05)
            threads = threading.active_count()
            _cmd(child, "send 40")  # more than the 8 slots: the publisher waits for our releases
            got = []
            for _ in range(40):
                got.append(await sub.recv_bytes(timeout=10))
                assert threading.active_count() == threads  # no waiting thread
            assert got == [b"s%d" % i for i in range(40)]
            assert sub.received == 40
            _cmd(child, "close")
            with pytest.raises(ChannelClosed, match="closed"):
                await sub.recv(timeout=10)
        child.stdin.close()
        await _wait_child(child)

    run(main())


def test_async_subscriber_sees_publisher_death(spawn, name):
    async def main():
        child = spawn(PUBLISHER, name, stdin=subprocess.PIPE)
        await asyncio.get_running_loop().run_in_executor(None, wait_for_line, child, "READY")
        sub = await Subscriber.open(name, timeout=10)
        try:
            _cmd(child, "send 1")
            assert await sub.recv_bytes(timeout=10) == b"s0"
            _cmd(child, "hang")
            await asyncio.get_running_loop().run_in_executor(None, wait_for_line, child, "HANGING")
            waiter = asyncio.ensure_future(sub.recv(timeout=20))
            await asyncio.sleep(0.2)
            assert not waiter.done()
            os.kill(child.pid, signal.SIGKILL)
            with pytest.raises(ChannelClosed, match="died"):
                await waiter  # the pidfd in the doorbell's epoll set wakes us
        finally:
            sub.close()
        await _wait_child(child)

    run(main())


def test_async_publisher_waits_for_a_slow_block_subscriber(spawn, name):
    code = """
import sys
from interproc.shm import Subscriber
sub = Subscriber.open(sys.argv[1], timeout=10)
print("READY", flush=True)
held = [sub.recv(timeout=10) for _ in range(4)]   # every slot but the one being written
print("HOLDING", flush=True)
sys.stdin.readline()
for s in held:
    s.release()
rest = [sub.recv_bytes(timeout=10) for _ in range(4)]
print("REST", *[r.decode() for r in rest], flush=True)
sys.stdin.readline()
"""

    async def main():
        async with Publisher.create(name, 16, 5) as pub:
            child = spawn(code, name, stdin=subprocess.PIPE)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, wait_for_line, child, "READY")
            for i in range(4):
                await pub.send(b"m%d" % i, timeout=5)
            await loop.run_in_executor(None, wait_for_line, child, "HOLDING")
            # Slot 4 is free; sample 5 needs slot 0, which the child holds.
            await pub.send(b"m4", timeout=5)
            with pytest.raises(Timeout):
                await pub.send(b"m5", timeout=0.1)
            threads = threading.active_count()
            sending = asyncio.ensure_future(pub.send(b"m5", timeout=10))
            await asyncio.sleep(0.1)
            assert not sending.done() and threading.active_count() == threads
            _cmd(child, "release")
            await sending  # woken by the child's release through our doorbell
            for i in (6, 7):
                await pub.send(b"m%d" % i, timeout=10)
            line = await loop.run_in_executor(None, wait_for_line, child, "REST")
            assert line.split() == ["REST", "m4", "m5", "m6", "m7"]
            _cmd(child, "bye")
            await _wait_child(child)

    run(main())


def test_async_pubsub_in_one_loop_both_ends(name):
    """Publisher and subscriber tasks on one loop: each waits for the other via doorbells."""

    async def main():
        async with Publisher.create(name, 32, 4) as pub:
            async with await Subscriber.open(name) as sub:
                async def produce():
                    for i in range(200):
                        await pub.send(b"%d" % i, timeout=10)
                    pub.close()

                async def consume():
                    return [int(x) async for x in sub]

                _, got = await asyncio.gather(produce(), consume())
                assert got == list(range(200))

    run(main())


def test_two_tasks_wait_on_one_async_subscriber(name):
    """Both waiters of one object share its doorbell (one add_reader per fd)."""

    async def main():
        async with Publisher.create(name, 16, 8) as pub:
            async with await Subscriber.open(name) as sub:
                a = asyncio.ensure_future(sub.recv_bytes(timeout=10))
                b = asyncio.ensure_future(sub.recv_bytes(timeout=10))
                await asyncio.sleep(0.05)
                assert not a.done() and not b.done()
                await pub.send(b"one")
                await pub.send(b"two")
                assert sorted(await asyncio.gather(a, b)) == [b"one", b"two"]

    run(main())
