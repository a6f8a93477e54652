"""asyncio pipes and sockets: the same wire format and checks as the sync ones.

Listening sockets, names, permissions and the first-instance token are made
by the sync classes (that part never blocks); only the waiting — accept,
connect, handshake, I/O — is asyncio.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl as _ssl
from typing import Any

from .. import _contract, _namedpipe, _sockets
from .._errors import ChannelClosed, HandleClosed, NotFound, PermissionDenied, ProtocolError, Timeout
from .._framing import DEFAULT_MAX_MESSAGE
from .._deadline import deadline_of as _deadline, now as _now
from .._setup import ClientSetup, ServerSetup
from .._trust import refuse_pickle_early
from .. import _accept
from .._naming import Scope
from .._pipes import ENV_VAR, pipe_from_env as _sync_pipe_from_env
from .._platform import peer_credentials
from ._stream import (AsyncChannel, AsyncStreamEnd, AsyncStreamReceiver, AsyncStreamSender, _StreamProtocol,
                      client_handshake, server_handshake)
from .._deadline import nobody_came


class _HandshakeTimeout(ProtocolError):
    """A client that did not finish its handshake in time (dropped, not raised)."""


_RETRY_SLICE = 0.05  # connect(timeout=) looks again for a listener this often


async def _connect_unix_sock(path: str, deadline: float | None, waiting: bool, what: str) -> socket.socket:
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            # AF_UNIX connect never goes "in progress": it succeeds, fails, or
            # says EAGAIN when the listener's backlog is full.  (asyncio's
            # sock_connect would take EAGAIN for "in progress" and hand back
            # a socket that is not connected.)
            sock.connect(path)
            return sock
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            if not waiting:
                raise NotFound(f"nothing listens at {what}") from exc
        except BlockingIOError:
            sock.close()  # the backlog is full: the server is busy, try again
        except BaseException:
            sock.close()
            raise
        # Waiting for a listener to appear: there is no event for "someone
        # bound this path", so look again after a short sleep.
        if deadline is not None and _now() >= deadline:
            raise Timeout(f"nothing listened at {what} in time")
        await asyncio.sleep(_RETRY_SLICE)


async def _wrap(sock: socket.socket | None, *, ssl: Any = None, server_side: bool = False,
                server_hostname: str | None = None, host_port: tuple | None = None,
                deadline: float | None = None) -> tuple[Any, _StreamProtocol]:
    loop = asyncio.get_running_loop()
    left = None if deadline is None else max(0.001, deadline - _now())
    kw: dict[str, Any] = {}
    if ssl is not None:
        kw["ssl"] = ssl
        kw["ssl_handshake_timeout"] = left or 60.0
    try:
        if server_side:
            coro = loop.connect_accepted_socket(_StreamProtocol, sock, **kw)
        elif host_port is not None:
            if ssl is not None:
                kw["server_hostname"] = server_hostname or host_port[0]
            coro = loop.create_connection(_StreamProtocol, *host_port, **kw)
        else:
            coro = loop.create_connection(_StreamProtocol, sock=sock, **kw)
        transport, proto = await asyncio.wait_for(coro, left)
    except asyncio.TimeoutError:
        raise Timeout("connection setup timed out") from None
    except _ssl.SSLError as exc:
        raise PermissionDenied(f"TLS handshake failed: {exc}") from exc
    except ConnectionRefusedError as exc:
        raise NotFound(f"nothing listens at {host_port}: connection refused") from exc
    return transport, proto


# -- sockets ---------------------------------------------------------------------

async def connect_unix(path: str, *, timeout: float | None = None, authkey: bytes | None = None,
                       codec: Any = "json", max_message_size: int = DEFAULT_MAX_MESSAGE,
                       server_uid: int | None = None) -> AsyncChannel:
    what = f"unix://{path}"
    deadline = _deadline(timeout)
    setup = ClientSetup("socket", what, authkey=authkey, server_uid=server_uid)  # checks server_uid first
    sock = await _connect_unix_sock(path, deadline, timeout is not None, what)
    creds = peer_credentials(sock)
    try:
        setup.check_peer(creds)
    except BaseException:
        sock.close()
        raise
    transport, proto = await _wrap(sock)
    try:
        await client_handshake(transport, proto, setup.handshake, deadline, what)
        out = setup.outcome(creds)
        ch = AsyncChannel(transport, proto, name=out.name, codec=codec, max_message_size=max_message_size,
                          trusted=out.trusted)
    except BaseException:
        transport.close()
        raise
    return out.apply(ch)


async def connect_tcp(host: str, port: int, *, timeout: float | None = None, authkey: bytes | None = None,
                      ssl: _ssl.SSLContext | None = None, server_hostname: str | None = None,
                      codec: Any = "json", max_message_size: int = DEFAULT_MAX_MESSAGE) -> AsyncChannel:
    what = _sockets._format_tcp(host, port)
    refuse_pickle_early(codec, authkey=authkey, tls=ssl)  # the same refusal as the sync side, before connecting
    deadline = _deadline(timeout)
    while True:
        try:
            transport, proto = await _wrap(None, ssl=ssl, server_hostname=server_hostname, host_port=(host, port),
                                           deadline=deadline)
            break
        except NotFound:
            if timeout is None:
                raise
            if _now() >= deadline:  # type: ignore[operator]
                raise nobody_came(f"tcp://{host}:{port}", timeout) from None
            await asyncio.sleep(_RETRY_SLICE)
    try:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            _sockets._tcp_options(sock)
        setup = ClientSetup("socket", what, authkey=authkey, tls=ssl)
        await client_handshake(transport, proto, setup.handshake, deadline, what)
        out = setup.outcome(peer=(host, port))
        ch = AsyncChannel(transport, proto, name=out.name, codec=codec, max_message_size=max_message_size,
                          trusted=out.trusted)
    except BaseException:
        transport.close()
        raise
    return out.apply(ch)


class StreamAsyncListener(_contract.AsyncListener):
    """``await accept(timeout=)``, ``address``, ``close()``; wraps a sync listener's socket."""

    def __init__(self, sync_listener: Any, *, kind: str = "socket") -> None:
        self._sync = sync_listener
        self.address = sync_listener.address
        self._kind = kind
        self._slots: asyncio.Semaphore | None = None
        self._acceptor: asyncio.Task | None = None
        self._ready: asyncio.Queue | None = None
        if kind == "pipe":
            self._slots = asyncio.Semaphore(sync_listener.max_instances)

    def __repr__(self) -> str:
        return f"<AsyncListener {self.address}{' closed' if self.closed else ''}>"

    @property
    def closed(self) -> bool:
        return self._sync._sock is None

    def fileno(self) -> int:
        return self._sync.fileno()

    async def accept(self, *, timeout: float | None = None) -> AsyncChannel:
        try:
            return await asyncio.wait_for(self._accept(), timeout)
        except asyncio.TimeoutError:
            raise Timeout(f"accept on {self.address} timed out") from None

    async def _accept(self) -> AsyncChannel:
        # Handshakes run as tasks side by side (as in the sync HandshakePool):
        # a silent or trickling client holds only its own task until its
        # deadline, and accept() takes whichever handshake finishes first.
        if self._acceptor is None or self._acceptor.done():
            self._ready = asyncio.Queue()
            self._acceptor = asyncio.get_running_loop().create_task(self._accept_loop(self._ready))
        ready = self._ready
        while True:
            if self._sync._sock is None:
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
                while len(tasks) >= _accept.MAX_PENDING:
                    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                lsock = self._sync._sock
                if lsock is None:
                    return
                try:
                    conn, peer = await loop.sock_accept(lsock)
                except BaseException:
                    if self._slots is not None:
                        self._slots.release()
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
            _accept.log.debug("%s: a client left before its handshake: %s", self.address, exc)
            return
        except _HandshakeTimeout as exc:
            self._give_back()
            _accept.log.warning("%s: dropped a connection from %s: %s", self.address, peer or "a local peer", exc)
            return
        except Exception as exc:
            self._give_back()
            _accept.log.warning("%s: handshake failed (client %s), connection refused: %s", self.address, peer or "a local peer", exc)
            ready.put_nowait(exc)
            return
        if self._sync._sock is None:
            ch.close()
            return
        ready.put_nowait(ch)

    def _give_back(self) -> None:
        if self._slots is not None:
            self._slots.release()

    async def _setup(self, conn: socket.socket, peer: Any) -> AsyncChannel:
        sync = self._sync
        deadline = _now() + sync.handshake_timeout
        creds = peer_credentials(conn) if conn.family == socket.AF_UNIX else None
        if self._kind == "pipe":
            setup = ServerSetup("pipe", f"pipe {sync.name!r}", mode=sync.mode, refuse=sync._refuse)
            refusal = setup.check_peer(creds)
            if refusal:
                try:
                    conn.send(refusal)
                finally:
                    conn.close()
                raise setup.refused(creds)
            tls = None
        else:
            tls = sync.ssl
            setup = ServerSetup("socket", self.address, authkey=sync.authkey, tls=tls)
            if creds is None:
                _sockets._tcp_options(conn)
        what = setup.what
        try:
            transport, proto = await _wrap(conn, ssl=tls, server_side=True, deadline=deadline)
        except BaseException:
            conn.close()
            raise
        try:
            try:
                await server_handshake(transport, proto, setup.handshake, deadline, what)
            except Timeout:
                raise _HandshakeTimeout(f"{what} did not complete the handshake in {sync.handshake_timeout}s") from None
            out = setup.outcome(creds, peer)
            ch = AsyncChannel(transport, proto, name=out.name, framed=out.framed, codec=sync.codec,
                              max_message_size=sync.max_message_size, trusted=out.trusted,
                              on_close=self._slots.release if self._slots else None)
        except BaseException:
            transport.close()
            raise
        return out.apply(ch)

    def close(self) -> None:
        if self._acceptor is not None and not self._acceptor.done():
            self._acceptor.cancel()
            sock = self._sync._sock
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


async def listen_tcp(host: str = "127.0.0.1", port: int = 0, **kw: Any) -> AsyncListener:
    """Like :func:`interproc.sockets.listen_tcp` (same arguments), for asyncio."""
    return AsyncListener(_sockets.listen_tcp(host, port, **kw))


async def listen_unix(path: str, **kw: Any) -> AsyncListener:
    return AsyncListener(_sockets.listen_unix(path, **kw))


# -- named pipes ------------------------------------------------------------------

class NamedPipe:
    """``await NamedPipe.serve(name)`` / ``await NamedPipe.connect(name)`` for asyncio."""

    @staticmethod
    async def serve(name: str, **kw: Any) -> AsyncListener:
        return AsyncListener(_namedpipe.NamedPipe.serve(name, **kw), kind="pipe")

    @staticmethod
    async def connect(name: str, *, timeout: float | None = None, scope: Scope = "user", codec: Any = "json",
                      max_message_size: int = DEFAULT_MAX_MESSAGE, server_uid: int | None = None) -> AsyncChannel:
        path = _namedpipe._pipe_path(name, scope)
        what = f"pipe {name!r}"
        deadline = _deadline(timeout)
        setup = ClientSetup("pipe", what, scope=scope, server_uid=server_uid)  # checks server_uid first
        sock = await _connect_unix_sock(path, deadline, timeout is not None, what)
        creds = peer_credentials(sock)
        try:
            setup.check_peer(creds)
        except BaseException:
            sock.close()
            raise
        transport, proto = await _wrap(sock)
        try:
            try:
                await client_handshake(transport, proto, setup.handshake, deadline, what)
            except Timeout:
                raise Timeout(f"{what}: no free instance within {timeout}s") from None
            out = setup.outcome(creds, name=f"pipe {name!r} -> pid {creds.pid}")
            ch = AsyncChannel(transport, proto, name=out.name, framed=out.framed, codec=codec,
                              max_message_size=max_message_size, trusted=out.trusted)
        except BaseException:
            transport.close()
            raise
        return out.apply(ch)


# -- anonymous pipes --------------------------------------------------------------

class AsyncPipeReader(AsyncStreamEnd, AsyncStreamReceiver):
    """The read end of a one-way pipe for asyncio: an AsyncReceiveChannel."""


class AsyncPipeWriter(AsyncStreamEnd, AsyncStreamSender):
    """The write end of a one-way pipe for asyncio: an AsyncSendChannel."""


async def from_pipe_end(end: Any, *, codec: Any = "json") -> AsyncPipeReader | AsyncPipeWriter:
    """Take over the descriptor of a sync PipeReader/PipeWriter for asyncio."""
    loop = asyncio.get_running_loop()
    io = end._io
    reading = io.rfd >= 0
    fd = io.rfd if reading else io.wfd
    io.rfd = io.wfd = -1  # the asyncio transport owns it now
    end.close()
    fileobj = os.fdopen(fd, "rb" if reading else "wb", buffering=0)
    if reading:
        transport, proto = await loop.connect_read_pipe(_StreamProtocol, fileobj)
    else:
        transport, proto = await loop.connect_write_pipe(_StreamProtocol, fileobj)
    cls = AsyncPipeReader if reading else AsyncPipeWriter
    return cls(transport, proto, name=f"{end.name} (asyncio)", codec=codec, max_message_size=end.max_message_size)


async def pipe(*, codec: Any = "json") -> tuple[AsyncPipeReader, AsyncPipeWriter]:
    """A new anonymous one-way pipe for asyncio: ``(reader, writer)``."""
    from .._pipes import pipe as sync_pipe

    r, w = sync_pipe()
    return await from_pipe_end(r, codec=codec), await from_pipe_end(w, codec=codec)  # type: ignore[return-value]


async def pipe_from_env(env_var: str = ENV_VAR, *, codec: Any = "json") -> AsyncPipeReader | AsyncPipeWriter:
    """In a child started by ``interproc.pipes.popen_with_pipe``: its end, for asyncio."""
    return await from_pipe_end(_sync_pipe_from_env(env_var), codec=codec)


# -- addresses (see interproc.aio._address) -------------------------------------------

async def connect_address(addr: Any, *, timeout: float | None = None, **kw: Any) -> AsyncChannel:
    if addr.scheme == "pipe":
        opts = _namedpipe._options(addr, kw)
        keep = {k: v for k, v in opts.items() if k in ("scope", "codec", "max_message_size", "server_uid")}
        # Server-only options are dropped, as the blocking connect does; anything else is a typo.
        unknown = set(kw) - set(keep) - {"mode", "max_instances", "file_mode", "allowed_uids", "handshake_timeout"}
        if unknown:
            raise TypeError(f"connect() got unexpected keyword argument(s) {', '.join(sorted(unknown))} "
                            f"for {addr.text!r}")
        return await NamedPipe.connect(addr.name, timeout=timeout, **keep)
    opts = _sockets._options(addr, kw)
    for server_only in ("backlog", "handshake_timeout", "insecure"):
        opts.pop(server_only, None)
    if addr.scheme == "unix":
        opts.pop("server_hostname", None)
        return await connect_unix(addr.path, timeout=timeout, **opts)
    if opts.pop("server_uid", None) is not None:
        raise ValueError("server_uid= applies to unix:// and pipe:// addresses (SO_PEERCRED), not to tcp://")
    return await connect_tcp(addr.host, addr.port, timeout=timeout, **opts)


async def listen_address(addr: Any, **kw: Any) -> AsyncListener:
    if addr.scheme == "pipe":
        return AsyncListener(_namedpipe.listen_address(addr, **kw), kind="pipe")
    return AsyncListener(_sockets.listen_address(addr, **kw))
