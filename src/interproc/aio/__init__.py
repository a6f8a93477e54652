"""asyncio versions of interproc's public names (as ``redis.asyncio``, ``zmq.asyncio``).

    ch = await interproc.aio.connect("tcp://127.0.0.1:5000", authkey=b"k")
    await ch.send(b"hi"); reply = await ch.recv(timeout=5)
    async for msg in ch: ...

Each line below re-exports one part's asyncio names.
"""

from ._address import connect as connect, listen as listen
from ._mailslot import Mailslot as Mailslot, MailslotWriter as MailslotWriter
from ._pubsub import Publisher as Publisher, Subscriber as Subscriber
from ._shm import ShmChannel as ShmChannel, ShmListener as ShmListener
from ._stream import AsyncChannel as AsyncChannel
from ._sync import Event as Event, Semaphore as Semaphore
from ._transports import (
    AsyncListener as AsyncListener,
    NamedPipe as NamedPipe,
    connect_tcp as connect_tcp,
    connect_unix as connect_unix,
    from_pipe_end as from_pipe_end,
    listen_tcp as listen_tcp,
    listen_unix as listen_unix,
    pipe as pipe,
    pipe_from_env as pipe_from_env,
)

__all__ = [
    "AsyncChannel",
    "AsyncListener",
    "Event",
    "Mailslot",
    "MailslotWriter",
    "NamedPipe",
    "Publisher",
    "Semaphore",
    "ShmChannel",
    "ShmListener",
    "Subscriber",
    "connect",
    "connect_tcp",
    "connect_unix",
    "from_pipe_end",
    "listen",
    "listen_tcp",
    "listen_unix",
    "pipe",
    "pipe_from_env",
]
