"""Sockets: framed message channels over TCP and AF_UNIX, and plain UDP.

    lst = listen_tcp("127.0.0.1", 0, authkey=b"secret")   # lst.address has the real port
    ch = connect_tcp("127.0.0.1", port, authkey=b"secret", timeout=5)
    ch.send(b"hello"); peer = lst.accept(timeout=5); peer.recv()

See docs/sockets.md.
"""

from ._framing import (
    DEFAULT_MAX_MESSAGE as DEFAULT_MAX_MESSAGE,
    FrameDecoder as FrameDecoder,
    FrameTooLarge as FrameTooLarge,
    TruncatedMessage as TruncatedMessage,
)
from ._sockets._channel import (
    MAX_DATAGRAM as MAX_DATAGRAM,
    SocketChannel as SocketChannel,
    SocketListener as SocketListener,
    UdpSocket as UdpSocket,
    connect_tcp as connect_tcp,
    connect_unix as connect_unix,
    listen_tcp as listen_tcp,
    listen_unix as listen_unix,
)

__all__ = [
    "DEFAULT_MAX_MESSAGE",
    "FrameDecoder",
    "FrameTooLarge",
    "MAX_DATAGRAM",
    "SocketChannel",
    "SocketListener",
    "TruncatedMessage",
    "UdpSocket",
    "connect_tcp",
    "connect_unix",
    "listen_tcp",
    "listen_unix",
]
