"""Serial over a pty_pair between two processes: round trips, message rate, bulk bytes.

    PYTHONPATH=src python benchmarks/serial_pty.py

A pty has no baud rate, so this measures the software path (relay process,
COBS + CRC-32 framing, poll-based I/O), not a UART.  At a real 115200 baud
the line carries ~11.5 KB/s and that, not this code, is the limit.
"""

from __future__ import annotations

import multiprocessing as mp
import time

import interproc.serial as serial


def echo(path: str, ready) -> None:
    with serial.open_channel(path) as ch:
        ready.set()
        for msg in ch:
            ch.send(msg)


def sink(path: str, ready, n: int) -> None:
    with serial.open(path, timeout=60) as port:
        ready.set()
        port.read_exactly(n)
        port.write(b"!")


def main() -> None:
    ctx = mp.get_context("spawn")
    with serial.pty_pair() as cable:
        ready = ctx.Event()
        child = ctx.Process(target=echo, args=(cable.b, ready))
        child.start()
        ready.wait(20)
        with serial.open_channel(cable.a) as ch:
            for _ in range(100):
                ch.send(b"warm")
                ch.recv(timeout=10)
            n = 2000
            t0 = time.perf_counter()
            for _ in range(n):
                ch.send(b"x" * 32)
                ch.recv(timeout=10)
            rt = (time.perf_counter() - t0) / n
            print(f"round trip, 32 B framed message:   {rt * 1e6:8.1f} us")
            big = b"\xa5" * (1 << 20)
            t0 = time.perf_counter()
            for _ in range(5):
                ch.send(big)
                ch.recv(timeout=30)
            dt = (time.perf_counter() - t0) / 5
            print(f"1 MiB framed message echoed:        {dt * 1e3:8.1f} ms  ({2 / dt:.0f} MiB/s both ways)")
        child.join(10)

    with serial.pty_pair() as cable:
        n = 16 << 20
        ready = ctx.Event()
        child = ctx.Process(target=sink, args=(cable.b, ready, n))
        child.start()
        ready.wait(20)
        with serial.open(cable.a, timeout=60) as port:
            t0 = time.perf_counter()
            port.write(b"\x55" * n)
            port.read(1)
            dt = time.perf_counter() - t0
        print(f"16 MiB byte stream one way:         {dt * 1e3:8.1f} ms  ({16 / dt:.0f} MiB/s)")
        child.join(10)


if __name__ == "__main__":
    main()
