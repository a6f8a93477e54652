"""The asyncio serial channel, against a synchronous peer in another process."""

from __future__ import annotations

import asyncio
import os

import pytest

import interproc.serial as serial
import interproc
from conftest import wait_for_line
from interproc import ChannelClosed, ProtocolError, Timeout
from interproc._address import parse
from interproc._serial._aio import connect_address
from interproc.serial import encode_frame

ECHO = """
    import sys, interproc.serial as s
    with s.open_channel(sys.argv[1]) as ch:
        print("READY", flush=True)
        for msg in ch:
            ch.send(msg[::-1])
        print("PEER-CLOSED", flush=True)
"""


@pytest.fixture
def cable():
    with serial.pty_pair() as p:
        yield p


def test_async_echo_across_processes(cable, spawn):
    proc = spawn(ECHO, cable.b)
    wait_for_line(proc, "READY")
    big = os.urandom(1 << 20)

    async def main():
        async with await serial.open_channel_async(cable.a) as ch:
            for m in [b"", b"one", b"\x00\x00", big]:
                await ch.send(m, timeout=30)
                assert await ch.recv(timeout=30) == m[::-1]
            await ch.send_obj({"n": 1})
            assert await ch.recv(timeout=10) == b'}1:"n"{'
            with pytest.raises(Timeout):
                await ch.recv(timeout=0.1)

    asyncio.run(asyncio.wait_for(main(), 60))
    wait_for_line(proc, "PEER-CLOSED")
    assert proc.wait(timeout=10) == 0


def test_async_iteration_noise_and_peer_close(cable, spawn):
    proc = spawn("""
        import sys, interproc.serial as s
        from interproc.serial import encode_frame
        with s.open(sys.argv[1], timeout=20) as port:
            print("READY", flush=True)
            port.read(1)
            for i in range(100):
                port.write(b"\\x17noise\\x99" + encode_frame(b"m%d" % i))
            port.write(encode_frame(b"", 1))
    """, cable.b)
    wait_for_line(proc, "READY")

    async def main():
        ch = await serial.open_channel_async(cable.a)
        try:
            ch.port.write(b"!")
            got = [m async for m in ch]
            assert got == [b"m%d" % i for i in range(100)]
            assert ch.dropped_frames == 100
            with pytest.raises(ChannelClosed, match="peer closed"):
                await ch.send(b"late")
        finally:
            await ch.aclose()
        assert ch.closed

    asyncio.run(asyncio.wait_for(main(), 60))
    assert proc.wait(timeout=10) == 0


def test_async_bad_frame_raise_and_close_wakes_recv(cable):
    async def main():
        raw = serial.open(cable.b)
        ch = await serial.open_channel_async(cable.a, on_bad_frame="raise")
        try:
            raw.write(b"\0junk\0" + encode_frame(b"good"))
            with pytest.raises(ProtocolError):
                await ch.recv(timeout=5)
            assert await ch.recv(timeout=5) == b"good"
            waiting = asyncio.ensure_future(ch.recv())
            await asyncio.sleep(0.1)
            ch.close()
            with pytest.raises(interproc.HandleClosed):
                await asyncio.wait_for(waiting, 5)
        finally:
            ch.close()
            raw.close()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_async_hang_up():
    async def main():
        p = serial.pty_pair()
        ch = await serial.open_channel_async(p.a)
        try:
            p.close()
            with pytest.raises(ChannelClosed, match="hung up"):
                await ch.recv(timeout=5)
        finally:
            ch.close()
            p.close()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_async_connect_address(cable, spawn):
    proc = spawn(ECHO, cable.b)
    wait_for_line(proc, "READY")

    async def main():
        import interproc.aio

        ch = await interproc.aio.connect(f"serial://{cable.a}?baudrate=9600")  # the public entry
        async with ch:
            await ch.send(b"abc")
            assert await ch.recv(timeout=10) == b"cba"
        with pytest.raises(ValueError, match="unknown option"):
            await connect_address(parse(f"serial://{cable.a}?bogus=1"))

    asyncio.run(asyncio.wait_for(main(), 30))
    wait_for_line(proc, "PEER-CLOSED")
