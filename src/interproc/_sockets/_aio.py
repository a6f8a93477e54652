"""asyncio sockets: the blocking driver's steps (:mod:`._core`, :mod:`interproc._setup`),
waiting on the event loop instead of in ``poll()``.

Listening sockets, their files and permissions are made by the blocking
classes (that never waits); connect, accept, TLS, the handshake and the I/O
are awaited.  :class:`StreamAsyncListener` also serves named pipes
(:mod:`interproc._pipes._aio`).
"""

from __future__ import annotations

import asyncio
import socket
import ssl as _ssl
from typing import Any

from .. import _contract
from .._accept import MAX_PENDING
from .._deadline import deadline_of, now
from .._errors import ChannelClosed, HandleClosed, ProtocolError, Timeout
from .._framing import DEFAULT_MAX_MESSAGE
from .._lifecycle import log
from .._platform import peer_credentials
from .._setup import ClientSetup, ServerSetup
from .._stream._aio import AsyncChannel, client_handshake, open_stream, server_handshake
from .._trust import refuse_pickle_early
from . import _channel as _blocking
from ._core import (
    connect_options,
    format_tcp,
    listen_options,
    resolve_tcp,
    retry_delay,
    server_setup,
    tcp_options,
    tcp_refused,
    tcp_socket,
    try_connect_unix,
)


async def connect_unix_socket(path: str, deadline: float | None, waiting: bool, what: str) -> socket.socket:
    """A connected AF_UNIX stream socket; ``NotFound`` at once unless ``waiting``."""
    while (sock := try_connect_unix(path, waiting, what)) is None:
        # No event says "someone bound this path": look again after a short sleep.
        await asyncio.sleep(retry_delay(deadline, what))
    return sock


async def _connect_tcp_socket(host: str, port: int, deadline: float | None, waiting: bool,
                              what: str) -> socket.socket:
    loop = asyncio.get_running_loop()
    infos = await loop.run_in_executor(None, resolve_tcp, host, port)  # getaddrinfo may block on DNS
    while True:
        err = 0
        for info in infos:
            sock = tcp_socket(info)
            try:
                left = None if deadline is None else max(0.0, deadline - now())
                await asyncio.wait_for(loop.sock_connect(sock, info[4]), left)
                return sock
            except asyncio.TimeoutError:
                sock.close()
                raise Timeout(f"connect to {what} timed out") from None
            except OSError as exc:
                sock.close()
                err = exc.errno or 0
            except BaseException:
                sock.close()
                raise
        await asyncio.sleep(tcp_refused(err, waiting, deadline, what))


async def finish_connect(sock: socket.socket, setup: ClientSetup, deadline: float | None, *, creds: Any = None,
                  peer: Any = None, name: str | None = None, codec: Any, max_message_size: int, ssl: Any = None,
                  server_hostname: str | None = None) -> AsyncChannel:
    """The client's steps after connect, as in the blocking driver: TLS, handshake, trust decision."""
    transport, proto = await open_stream(sock, ssl=ssl, server_hostname=server_hostname, deadline=deadline)
    try:
        await client_handshake(transport, proto, setup.handshake, deadline, setup.what)
        out = setup.outcome(creds, peer, name=name)
        ch = AsyncChannel(transport, proto, name=out.name, framed=out.framed, codec=codec,
                          max_message_size=max_message_size, trusted=out.trusted)
    except BaseException:
        transport.close()
        raise
    return out.apply(ch)


async def connect_unix(path: str, *, timeout: float | None = None, authkey: bytes | None = None,
                       codec: Any = "json", max_message_size: int = DEFAULT_MAX_MESSAGE,
                       server_uid: int | None = None) -> AsyncChannel:
    what = f"unix://{path}"
    deadline = deadline_of(timeout)
    setup = ClientSetup("socket", what, authkey=authkey, server_uid=server_uid)  # checks server_uid first
    sock = await connect_unix_socket(path, deadline, timeout is not None, what)
    try:
        creds = peer_credentials(sock)
        setup.check_peer(creds)
    except BaseException:
        sock.close()
        raise
    return await finish_connect(sock, setup, deadline, creds=creds, codec=codec, max_message_size=max_message_size)


async def connect_tcp(host: str, port: int, *, timeout: float | None = None, authkey: bytes | None = None,
                      ssl: _ssl.SSLContext | None = None, server_hostname: str | None = None,
                      codec: Any = "json", max_message_size: int = DEFAULT_MAX_MESSAGE) -> AsyncChannel:
    what = format_tcp(host, port)
    refuse_pickle_early(codec, authkey=authkey, tls=ssl)  # the same refusal as the sync side, before connecting
    deadline = deadline_of(timeout)
    sock = await _connect_tcp_socket(host, port, deadline, timeout is not None, what)
    try:
        tcp_options(sock)
    except BaseException:
        sock.close()
        raise
    return await finish_connect(sock, ClientSetup("socket", what, authkey=authkey, tls=ssl), deadline, peer=(host, port),
                         codec=codec, max_message_size=max_message_size, ssl=ssl,
                         server_hostname=server_hostname or host)


class _HandshakeTimeout(ProtocolError):
    """A client that did not finish its handshake in time (dropped, not raised)."""


class StreamAsyncListener(_contract.AsyncListener):
    """``await accept(timeout=)``, ``address``, ``close()`` over a blocking
    listener's socket (a ``SocketListener``; ``PipeServer`` in the subclass of
    :mod:`interproc._pipes._aio`).

    Handshakes run as tasks side by side (as in the blocking
    :class:`~interproc._accept.HandshakePool`): a silent or trickling client
    holds only its own task until its deadline, and ``accept()`` takes
    whichever handshake finishes first.
    """

    #: A pipe server's free instances (a client is greeted only with one); None: no limit.
    _slots: asyncio.Semaphore | None = None

    def __init__(self, sync_listener: Any) -> None:
        self._sync = sync_listener
        self.address = sync_listener.address
        self._acceptor: asyncio.Task | None = None
        self._ready: asyncio.Queue | None = None

    def __repr__(self) -> str:
        return f"<AsyncListener {self.address}{' closed' if self.closed else ''}>"

    @property
    def closed(self) -> bool:
        return self._sync.listening_socket is None

    def fileno(self) -> int:
        return self._sync.fileno()

    async def accept(self, *, timeout: float | None = None) -> AsyncChannel:
        try:
            return await asyncio.wait_for(self._accept(), timeout)
        except asyncio.TimeoutError:
            raise Timeout(f"accept on {self.address} timed out") from None

    async def _accept(self) -> AsyncChannel:
        if self._acceptor is None or self._acceptor.done():
            self._ready = asyncio.Queue()
            self._acceptor = asyncio.get_running_loop().create_task(self._accept_loop(self._ready))
        ready = self._ready
        while True:
            if self._sync.listening_socket is None:
                raise HandleClosed(f"accept on listener {self.address} after its close()")
            got_task = asyncio.ensure_future(ready.get())
            try:
                done, _ = await asyncio.wait({got_task, self._acceptor}, return_when=asyncio.FIRST_COMPLETED)
            except BaseException:  # timed out or cancelled: leave a finished handshake for the next call
                if got_task.done() and not got_task.cancelled():
                    ready.put_nowait(got_task.result())
                got_task.cancel()
                raise
            if got_task not in done:
                got_task.cancel()
                exc = self._acceptor.exception()
                raise exc if exc is not None else HandleClosed(f"accept on listener {self.address} after its close()")
            result = got_task.result()
            if isinstance(result, BaseException):
                raise result
            return result

    async def _accept_loop(self, ready: asyncio.Queue) -> None:
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task] = set()
        try:
            while True:
                if self._slots is not None:
                    await self._slots.acquire()  # a pipe client is greeted only with a free instance
                while len(tasks) >= MAX_PENDING:
                    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                lsock = self._sync.listening_socket
                if lsock is None:
                    return
                try:
                    conn, peer = await loop.sock_accept(lsock)
                except BaseException:
                    self._give_back()
                    raise
                task = loop.create_task(self._one(conn, peer, ready))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            for task in tasks:
                task.cancel()

    async def _one(self, conn: socket.socket, peer: Any, ready: asyncio.Queue) -> None:
        try:
            ch = await self._setup(conn, peer)
        except ChannelClosed as exc:
            self._give_back()
            log.debug("%s: a client left before its handshake: %s", self.address, exc)
            return
        except _HandshakeTimeout as exc:
            self._give_back()
            log.warning("%s: dropped a connection from %s: %s", self.address, peer or "a local peer", exc)
            return
        except Exception as exc:
            self._give_back()
            log.warning("%s: handshake failed (client %s), connection refused: %s", self.address,
                        peer or "a local peer", exc)
            ready.put_nowait(exc)
            return
        if self._sync.listening_socket is None:
            ch.close()
            return
        ready.put_nowait(ch)

    def _give_back(self) -> None:
        if self._slots is not None:
            self._slots.release()

    def _server_setup(self, conn: socket.socket) -> tuple[ServerSetup, Any, Any]:
        """The setup for ``conn``, its peer credentials and TLS context."""
        sync = self._sync
        creds = peer_credentials(conn) if conn.family == socket.AF_UNIX else None
        if creds is None:
            tcp_options(conn)
        return server_setup(sync), creds, sync.ssl

    async def _setup(self, conn: socket.socket, peer: Any) -> AsyncChannel:
        sync = self._sync
        deadline = now() + sync.handshake_timeout
        try:
            setup, creds, tls = self._server_setup(conn)
        except BaseException:
            conn.close()
            raise
        try:
            transport, proto = await open_stream(conn, ssl=tls, server_side=True, deadline=deadline)
        except Timeout:
            raise _HandshakeTimeout(f"{setup.what} did not complete TLS in {sync.handshake_timeout}s") from None
        try:
            try:
                await server_handshake(transport, proto, setup.handshake, deadline, setup.what)
            except Timeout:
                raise _HandshakeTimeout(f"{setup.what} did not complete the handshake in "
                                        f"{sync.handshake_timeout}s") from None
            out = setup.outcome(creds, peer)
            ch = AsyncChannel(transport, proto, name=out.name, framed=out.framed, codec=sync.codec,
                              max_message_size=sync.max_message_size, trusted=out.trusted,
                              on_close=self._give_back if self._slots is not None else None)
        except BaseException:
            transport.close()
            raise
        return out.apply(ch)

    def close(self) -> None:
        if self._acceptor is not None and not self._acceptor.done():
            self._acceptor.cancel()
            sock = self._sync.listening_socket
            if sock is not None:
                # The cancelled sock_accept unregisters its reader only on the
                # next loop turn; do it now, before the descriptor is closed
                # (else a new socket reusing the number meets a stale entry).
                try:
                    self._acceptor.get_loop().remove_reader(sock.fileno())
                except Exception:
                    pass
        self._sync.close()
        while self._ready is not None and not self._ready.empty():
            leftover = self._ready.get_nowait()
            if isinstance(leftover, AsyncChannel):
                leftover.close()


AsyncListener = StreamAsyncListener  # the old private name, used by other modules


async def listen_tcp(host: str = "127.0.0.1", port: int = 0, **kw: Any) -> StreamAsyncListener:
    """Like :func:`interproc.sockets.listen_tcp` (same arguments), for asyncio."""
    return StreamAsyncListener(_blocking.listen_tcp(host, port, **kw))


async def listen_unix(path: str, **kw: Any) -> StreamAsyncListener:
    return StreamAsyncListener(_blocking.listen_unix(path, **kw))


# -- addresses (see interproc.aio._address) -------------------------------------------

async def connect_address(addr: Any, *, timeout: float | None = None, **kw: Any) -> AsyncChannel:
    opts = connect_options(addr, kw)
    if addr.scheme == "unix":
        return await connect_unix(addr.path, timeout=timeout, **opts)
    return await connect_tcp(addr.host, addr.port, timeout=timeout, **opts)


async def listen_address(addr: Any, **kw: Any) -> StreamAsyncListener:
    opts = listen_options(addr, kw)
    if addr.scheme == "unix":
        return await listen_unix(addr.path, **opts)
    return await listen_tcp(addr.host, addr.port, **opts)
