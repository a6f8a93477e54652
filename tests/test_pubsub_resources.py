"""A Publisher or Subscriber garbage-collected without close() emits
ResourceWarning (as the other handles and the standard library do) and is
then closed for real; a closed one is silent.  Real processes on the other
side."""

from __future__ import annotations

import asyncio
import subprocess

from conftest import wait_for_line
from test_logging_resources import (
    _warnings_of,  # ResourceWarnings of a call, after a gc
)

from interproc import aio
from interproc.shm import Publisher, Subscriber

# Subscribes, then prints every sample until the publisher is gone.
SUBSCRIBER = """
import sys
from interproc.shm import Subscriber
with Subscriber.open(sys.argv[1], timeout=10) as sub:
    print("SUBSCRIBED", flush=True)
    for data in sub:
        print(data.decode(), flush=True)
print("END", flush=True)
"""

# Publishes one sample per line of stdin, until stdin closes.
PUBLISHER = """
import sys
from interproc.shm import Publisher
with Publisher.create(sys.argv[1], slot_size=64, slots=4) as pub:
    print("READY", flush=True)
    for line in sys.stdin:
        if line.strip() == "subscribers":
            print("SUBSCRIBERS", pub.subscribers, flush=True)
"""


def test_a_dropped_publisher_warns_and_its_subscribers_see_it_closed(name, spawn):
    def drop():
        pub = Publisher.create(name, slot_size=64, slots=4)
        proc = spawn(SUBSCRIBER, name)
        wait_for_line(proc, "SUBSCRIBED")
        pub.send(b"last")
        holder.append(proc)  # dropped here without close()

    holder: list[subprocess.Popen] = []
    assert _warnings_of(drop) == [f"unclosed Publisher {name!r}"]
    out, err = holder[0].communicate(timeout=20)
    assert out.split() == ["last", "END"], out + err  # the sample, then ChannelClosed


def test_a_dropped_subscriber_warns_and_leaves_the_table(name, spawn):
    proc = spawn(PUBLISHER, name, stdin=subprocess.PIPE)
    wait_for_line(proc, "READY")

    def drop():
        Subscriber.open(name, timeout=10)

    assert _warnings_of(drop) == [f"unclosed Subscriber {name!r}"]
    proc.stdin.write("subscribers\n")
    proc.stdin.flush()
    assert wait_for_line(proc, "SUBSCRIBERS") == "SUBSCRIBERS 0"
    proc.stdin.close()
    proc.wait(10)


def test_closed_publishers_and_subscribers_do_not_warn(name):
    def closed():
        with Publisher.create(name, slot_size=64, slots=4) as pub:
            sub = Subscriber.open(name)
            pub.send(b"x")
            assert sub.recv_bytes(timeout=10) == b"x"
            sub.close()
            sub.close()  # twice is harmless

    assert _warnings_of(closed) == []


def test_dropped_asyncio_handles_warn_too(name):
    async def main():
        pub = aio.Publisher.create(name, slot_size=64, slots=4)
        sub = await aio.Subscriber.open(name)
        await pub.send(b"y")
        assert await sub.recv_bytes(timeout=10) == b"y"

    warned = _warnings_of(lambda: asyncio.run(main()))
    assert sorted(warned) == sorted([f"unclosed Publisher {name!r}", f"unclosed Subscriber {name!r}"])
