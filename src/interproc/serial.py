"""Serial ports: byte streams, framed message channels, and virtual null-modems.

    import interproc.serial as serial

    with serial.pty_pair() as cable:                 # two ptys wired together
        a = serial.open_channel(cable.a, 115200)     # COBS frames + CRC-32
        b = serial.open_channel(cable.b, 115200)
        a.send(b"hello"); b.recv(timeout=1)          # -> b"hello"

    port = serial.open("/dev/ttyUSB0", 9600, parity="E")   # byte stream
    port.write(b"AT\\r"); port.read(64, timeout=1)

    interproc.connect("serial:///dev/ttyUSB0?baudrate=115200")   # a SerialChannel

    ch = await serial.open_channel_async(cable.a)    # asyncio: AsyncSerialChannel

Ports are opened exclusively by default (flock + TIOCEXCL).  See docs/serial.md.
"""

from ._serial._cobs import FrameDecoder as FrameDecoder, encode_frame as encode_frame
from ._serial._aio import AsyncSerialChannel as AsyncSerialChannel, open_channel as open_channel_async
from ._serial._ptypair import PtyPair as PtyPair, pty_pair as pty_pair
from ._serial import SerialPort as SerialPort, open as open, ports as ports
from ._serial._channel import (
    SerialChannel as SerialChannel,
    open_channel as open_channel,
)

__all__ = [
    "AsyncSerialChannel",
    "FrameDecoder",
    "PtyPair",
    "SerialChannel",
    "SerialPort",
    "encode_frame",
    "open",
    "open_channel",
    "open_channel_async",
    "ports",
    "pty_pair",
]
