"""Tour: two processes exchange framed messages over a virtual null-modem."""

from __future__ import annotations

import os

from . import Step, spawn_child


def _serial() -> str:
    from ... import serial

    with serial.pty_pair() as cable:
        # Open our end first: opening a port discards what arrived before.
        with serial.open_channel(cable.a, 115200) as ch:
            with spawn_child(f"{__name__}:peer", cable.b) as child:
                hello = ch.recv_obj(timeout=20)
                # Line noise between two frames: dropped and counted, never fatal.
                ch.port.write(os.urandom(32).replace(b"\0", b"\1"))
                ch.send_obj({"sum": sum(hello["numbers"])}, timeout=20)
                reply = child.result()
    return (f"peer process sent {hello} over {cable.b} <-> {cable.a} (COBS frames, CRC-32); "
            f"it got back {reply['got']} after {reply['dropped']} noise frame(s) dropped")


def peer(port: str) -> dict:
    import interproc

    with interproc.connect(f"serial://{port}?baudrate=115200") as ch:
        ch.send_obj({"numbers": [1, 2, 3, 4], "pid": os.getpid()}, timeout=20)
        got = ch.recv_obj(timeout=20)
        return {"got": got, "dropped": ch.dropped_frames}


STEPS = [Step(100, "serial port", _serial)]
