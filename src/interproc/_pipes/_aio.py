"""asyncio pipes: named pipes (``pipe://``) and anonymous pipes.

A named pipe is set up by the same steps as in :mod:`._named` — the path,
refusal and setup of :mod:`._core`, the connect attempts of
:mod:`interproc._sockets._core` — with the waiting done on the event loop.
Anonymous pipe ends are made by :mod:`._anonymous` and handed to asyncio.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

from .._deadline import deadline_of
from .._errors import Timeout
from .._framing import DEFAULT_MAX_MESSAGE
from .._naming import Scope, validate_name
from .._platform import peer_credentials
from .._setup import ServerSetup
from .._sockets._aio import StreamAsyncListener, connect_unix_socket, finish_connect
from .._stream._aio import (
    AsyncChannel,
    AsyncStreamEnd,
    AsyncStreamReceiver,
    AsyncStreamSender,
    StreamProtocol,
)
from . import _named
from ._anonymous import ENV_VAR, PipeReader
from ._anonymous import pipe as _sync_pipe
from ._anonymous import pipe_from_env as _sync_pipe_from_env
from ._core import client_setup, connect_options, pipe_path, server_setup


class AsyncPipeServer(StreamAsyncListener):
    """The asyncio server end of a named pipe: at most ``max_instances``
    clients at once, peers refused by uid as in the blocking ``PipeServer``."""

    def __init__(self, sync_server: Any) -> None:
        super().__init__(sync_server)
        self._slots = asyncio.Semaphore(sync_server.max_instances)

    def _server_setup(self, conn: socket.socket) -> tuple[ServerSetup, Any, Any]:
        setup, creds = server_setup(self._sync), peer_credentials(conn)
        setup.screen(creds, conn.send)
        return setup, creds, None


class NamedPipe:
    """``await NamedPipe.serve(name)`` / ``await NamedPipe.connect(name)`` for asyncio."""

    @staticmethod
    async def serve(name: str, **kw: Any) -> AsyncPipeServer:
        return AsyncPipeServer(_named.NamedPipe.serve(name, **kw))

    @staticmethod
    async def connect(name: str, *, timeout: float | None = None, scope: Scope = "user", codec: Any = "json",
                      max_message_size: int = DEFAULT_MAX_MESSAGE, server_uid: int | None = None) -> AsyncChannel:
        validate_name(name, "pipe name")
        setup = client_setup(name, scope, server_uid)  # checks server_uid first
        deadline = deadline_of(timeout)
        sock = await connect_unix_socket(pipe_path(name, scope), deadline, timeout is not None, setup.what)
        try:
            creds = peer_credentials(sock)
            setup.check_peer(creds)
        except BaseException:
            sock.close()
            raise
        try:
            return await finish_connect(sock, setup, deadline, creds=creds, name=f"pipe {name!r} -> pid {creds.pid}",
                                 codec=codec, max_message_size=max_message_size)
        except Timeout:
            raise Timeout(f"{setup.what}: no free instance within {timeout}s") from None


# -- anonymous pipes --------------------------------------------------------------

class AsyncPipeReader(AsyncStreamEnd, AsyncStreamReceiver):
    """The read end of a one-way pipe for asyncio: an AsyncReceiveChannel."""


class AsyncPipeWriter(AsyncStreamEnd, AsyncStreamSender):
    """The write end of a one-way pipe for asyncio: an AsyncSendChannel."""


async def from_pipe_end(end: Any, *, codec: Any = "json") -> AsyncPipeReader | AsyncPipeWriter:
    """Take over the descriptor of a sync PipeReader/PipeWriter for asyncio."""
    loop = asyncio.get_running_loop()
    reading = isinstance(end, PipeReader)
    name, max_message_size = end.name, end.max_message_size
    fileobj = os.fdopen(end.detach(), "rb" if reading else "wb", buffering=0)  # the transport owns it now
    if reading:
        transport, proto = await loop.connect_read_pipe(StreamProtocol, fileobj)
    else:
        transport, proto = await loop.connect_write_pipe(StreamProtocol, fileobj)
    cls = AsyncPipeReader if reading else AsyncPipeWriter
    return cls(transport, proto, name=f"{name} (asyncio)", codec=codec, max_message_size=max_message_size)


async def pipe(*, codec: Any = "json") -> tuple[AsyncPipeReader, AsyncPipeWriter]:
    """A new anonymous one-way pipe for asyncio: ``(reader, writer)``."""
    r, w = _sync_pipe()
    return await from_pipe_end(r, codec=codec), await from_pipe_end(w, codec=codec)  # type: ignore[return-value]


async def pipe_from_env(env_var: str = ENV_VAR, *, codec: Any = "json") -> AsyncPipeReader | AsyncPipeWriter:
    """In a child started by ``interproc.pipes.popen_with_pipe``: its end, for asyncio."""
    return await from_pipe_end(_sync_pipe_from_env(env_var), codec=codec)


# -- addresses (see interproc.aio._address) -------------------------------------------

async def connect_address(addr: Any, *, timeout: float | None = None, **kw: Any) -> AsyncChannel:
    return await NamedPipe.connect(addr.name, timeout=timeout, **connect_options(addr, kw))


async def listen_address(addr: Any, **kw: Any) -> AsyncPipeServer:
    return AsyncPipeServer(_named.listen_address(addr, **kw))
