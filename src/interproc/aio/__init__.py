"""asyncio versions of interproc's public names (as ``redis.asyncio``, ``zmq.asyncio``).

    ch = await interproc.aio.connect("tcp://127.0.0.1:5000", authkey=b"k")
    await ch.send(b"hi"); reply = await ch.recv(timeout=5)
    async for msg in ch: ...

Each line below re-exports one part's asyncio names.
"""

import typing as _typing

from ._address import connect as connect, listen as listen
from .._contract import (
    AsyncChannel as AsyncChannel,
    AsyncListener as AsyncListener,
    AsyncReceiveChannel as AsyncReceiveChannel,
    AsyncSendChannel as AsyncSendChannel,
)
from ._serve import AsyncServer as AsyncServer, serve as serve
from .._mailslot._aio import Mailslot as Mailslot, MailslotWriter as MailslotWriter
from ._pubsub import Publisher as Publisher, Subscriber as Subscriber
from .._shmchannel._aio import ShmChannel as ShmChannel, ShmListener as ShmListener
from ._sync import Event as Event, Semaphore as Semaphore
from .._sockets._aio import (
    connect_tcp as connect_tcp,
    connect_unix as connect_unix,
    listen_tcp as listen_tcp,
    listen_unix as listen_unix,
)
from .._pipes._aio import NamedPipe as NamedPipe, from_pipe_end as from_pipe_end, pipe as pipe
from .._pipes._aio import pipe_from_env as pipe_from_env


# The asyncio RPC and distributed-objects APIs, as ``interproc.aio.rpc`` and
# ``interproc.aio.objects`` (``from interproc.aio import rpc``).  They are the
# modules ``interproc.rpc.aio`` and ``interproc.objects.aio``, loaded on first
# use: protocols sit above the transports, so this package must not import
# them when it is imported (nor make every asyncio program load them).
# Submodules, so not in __all__ (as for any package's submodules).
_PROTOCOLS = {"rpc": "interproc.rpc.aio", "objects": "interproc.objects.aio"}

if _typing.TYPE_CHECKING:  # what type checkers see; at run time __getattr__ loads them on first use
    from ..objects import aio as _objects_aio
    from ..rpc import aio as _rpc_aio

    objects = _objects_aio
    rpc = _rpc_aio


def __getattr__(name: str) -> object:
    if name in _PROTOCOLS:
        import importlib

        module = importlib.import_module(_PROTOCOLS[name])
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AsyncChannel",
    "AsyncListener",
    "AsyncReceiveChannel",
    "AsyncSendChannel",
    "AsyncServer",
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
    "serve",
]
