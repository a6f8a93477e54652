"""``jsonrpc+tcp://`` and ``jsonrpc+unix://``: plain JSON-RPC 2.0 for other languages.

One JSON text per line (UTF-8, ``\\n``-terminated), no handshake, no framing
header — what ``nc``, ``socat`` or any language's JSON-RPC client speaks.
:class:`LineChannel` gives such a socket the Channel shape (``send`` one
message, ``recv`` one line), so the same protocol and drivers serve it.
The line splitter is sans-I/O (:class:`LineDecoder`).  With no authentication
on the wire, listening beyond loopback needs an ``ssl=`` context (TLS),
or ``insecure=True``.
"""

from __future__ import annotations

import os
import select
import socket
import ssl as _ssl
import threading
import time
from typing import Any

from .._errors import ChannelClosed, HandleClosed, NotFound, PermissionDenied, ProtocolError, Timeout

PREFIX = "jsonrpc+"
MAX_LINE = 16 * 1024 * 1024


def is_line_address(address: str) -> bool:
    return isinstance(address, str) and address.lower().startswith(PREFIX)


class LineDecoder:
    """Bytes in, whole lines out (without their ``\\n``; blank lines skipped)."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._buf = bytearray()
        self.max_line = max_line

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        if b"\n" not in data:
            if len(self._buf) > self.max_line:
                raise ProtocolError(f"a JSON-RPC line longer than {self.max_line} bytes")
            return []
        *lines, rest = self._buf.split(b"\n")
        self._buf = bytearray(rest)
        return [bytes(line) for line in lines if line.strip()]


def _split(address: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of a jsonrpc+tcp:// or jsonrpc+unix:// address."""
    from urllib.parse import urlsplit

    parts = urlsplit(address)
    scheme = parts.scheme.lower().removeprefix(PREFIX)
    if scheme == "tcp":
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None:
            raise ValueError(f"address {address!r} must be jsonrpc+tcp://HOST:PORT")
        return scheme, parts.hostname, port, ""
    if scheme == "unix":
        if parts.netloc or not parts.path.startswith("/"):
            raise ValueError(f"address {address!r} must be jsonrpc+unix:///ABSOLUTE/PATH (three slashes)")
        return scheme, "", 0, parts.path
    raise ValueError(f"address {address!r}: expected jsonrpc+tcp:// or jsonrpc+unix://")


class LineChannel:
    """A socket carrying newline-delimited JSON texts, shaped as a Channel."""

    def __init__(self, sock: socket.socket, address: str) -> None:
        self.address = address
        self._tls = isinstance(sock, _ssl.SSLSocket)
        sock.setblocking(False)
        self._sock = sock
        self._decoder = LineDecoder()
        self._lines: list[bytes] = []
        self._tls_lock = threading.Lock()  # one SSL object: never read and written at once
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def _poll(self, events: int, deadline: float | None, what: str) -> None:
        while True:
            if self._closed:
                raise HandleClosed(f"{what} on a closed {self.address}")
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise Timeout(f"{what} on {self.address} timed out")
            p = select.poll()
            p.register(self._sock.fileno(), events)
            if p.poll(None if left is None else max(1, int(left * 1000))):
                return

    def send(self, data: Any, *, timeout: float | None = None) -> None:
        view = memoryview(bytes(data) + b"\n")
        deadline = None if timeout is None else time.monotonic() + timeout
        while view:
            try:
                with self._tls_lock:
                    n = self._sock.send(view)
                view = view[n:]
            except _ssl.SSLWantReadError:
                self._poll(select.POLLIN, deadline, "send")
            except (BlockingIOError, _ssl.SSLWantWriteError):
                self._poll(select.POLLOUT, deadline, "send")
            except _ssl.SSLError as exc:
                raise ProtocolError(f"{self.address}: TLS failed: {exc}") from exc
            except OSError as exc:
                if self._closed:
                    raise HandleClosed(f"send on a closed {self.address}") from None
                raise ChannelClosed(f"{self.address}: {exc}") from exc

    def recv(self, *, timeout: float | None = None) -> bytes:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._lines:
            try:
                with self._tls_lock:
                    chunk = self._sock.recv(65536)
            except _ssl.SSLWantWriteError:
                self._poll(select.POLLOUT, deadline, "recv")
                continue
            except (BlockingIOError, _ssl.SSLWantReadError):
                self._poll(select.POLLIN, deadline, "recv")
                continue
            except (_ssl.SSLEOFError, _ssl.SSLZeroReturnError):
                raise ChannelClosed(f"{self.address}: the peer closed the TLS connection") from None
            except _ssl.SSLError as exc:
                raise ProtocolError(f"{self.address}: bad TLS data from the peer: {exc}") from exc
            except OSError as exc:
                if self._closed:
                    raise HandleClosed(f"recv on a closed {self.address}") from None
                raise ChannelClosed(f"{self.address}: {exc}") from exc
            if not chunk:
                raise ChannelClosed(f"{self.address}: the peer closed the connection")
            self._lines.extend(self._decoder.feed(chunk))
        return self._lines.pop(0)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in poll
            except OSError:
                pass
            self._sock.close()

    def __enter__(self) -> LineChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LineListener:
    """Accepts newline-delimited JSON-RPC connections."""

    def __init__(self, address: str, *, ssl: _ssl.SSLContext | None = None, insecure: bool = False,
                 mode: int = 0o600, backlog: int = 128) -> None:
        scheme, host, port, path = _split(address)
        self._ssl = ssl
        self._path = ""
        if scheme == "tcp":
            from .._sockets._core import is_loopback as _is_loopback

            if not (ssl or insecure or _is_loopback(host)):
                raise PermissionDenied(f"refusing plain JSON-RPC on {host!r} beyond loopback: no authentication "
                                       "on this wire; pass ssl= (TLS), or insecure=True if this network is trusted")
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            family, _, _, _, sockaddr = infos[0]
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(sockaddr)
            h, p = sock.getsockname()[:2]
            self.address = f"{PREFIX}tcp://{'[' + h + ']' if ':' in h else h}:{p}"
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            old = os.umask(0o777 & ~mode)
            try:
                sock.bind(path)
            except OSError as exc:
                sock.close()
                from .._errors import map_os_error

                raise map_os_error(exc, f"jsonrpc+unix listener {path!r}") from exc
            finally:
                os.umask(old)
            self._path = path
            self.address = f"{PREFIX}unix://{path}"
        sock.listen(backlog)
        sock.setblocking(False)
        self._sock = sock
        self._closed = False

    def accept(self, *, timeout: float | None = None) -> LineChannel:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._closed:
                raise HandleClosed("accept on a closed listener")
            try:
                conn, _ = self._sock.accept()
                break
            except BlockingIOError:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise Timeout(f"accept on {self.address} timed out") from None
                select.select([self._sock], [], [], left)
        if conn.family != socket.AF_UNIX:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._ssl is not None:
            # The handshake happens in the channel's first reads and writes (on the
            # connection's own thread), so a slow or silent client never holds up accept().
            conn.setblocking(False)
            conn = self._ssl.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        return LineChannel(conn, self.address)

    def fileno(self) -> int:
        """The listening socket (readable: a client is there), for ``interproc.serve``."""
        return self._sock.fileno()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._sock.close()
            if self._path:
                try:
                    os.unlink(self._path)
                except OSError:
                    pass

    def __enter__(self) -> LineListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect_lines(address: str, *, timeout: float | None = None, ssl: _ssl.SSLContext | None = None,
                  server_hostname: str | None = None) -> LineChannel:
    scheme, host, port, path = _split(address)
    if scheme == "tcp":
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except ConnectionRefusedError as exc:
            raise NotFound(f"nothing listens at {address}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ssl is not None:
            sock = ssl.wrap_socket(sock, server_hostname=server_hostname or host)
    else:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            raise NotFound(f"nothing listens at {address}") from exc
    return LineChannel(sock, address)


# The address dispatch (interproc.connect / interproc.listen) calls these.
def connect_address(addr: Any, *, timeout: float | None = None, **kw: Any) -> LineChannel:
    return connect_lines(str(addr), timeout=timeout, **kw)


def listen_address(addr: Any, **kw: Any) -> LineListener:
    return LineListener(str(addr), **kw)


# -- asyncio -------------------------------------------------------------------------
class AsyncLineChannel:
    """asyncio twin of :class:`LineChannel` over a StreamReader/StreamWriter pair."""

    def __init__(self, reader: Any, writer: Any, address: str) -> None:
        self._reader, self._writer, self.address = reader, writer, address
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def send(self, data: Any, *, timeout: float | None = None) -> None:
        import asyncio

        if self._closed:
            raise HandleClosed(f"send on a closed {self.address}")
        try:
            self._writer.write(bytes(data) + b"\n")
            await asyncio.wait_for(self._writer.drain(), timeout)
        except asyncio.TimeoutError:
            raise Timeout(f"send on {self.address} timed out") from None
        except (ConnectionError, OSError) as exc:
            raise ChannelClosed(f"{self.address}: {exc}") from exc

    async def recv(self, *, timeout: float | None = None) -> bytes:
        import asyncio

        while True:
            if self._closed:
                raise HandleClosed(f"recv on a closed {self.address}")
            try:
                line = await asyncio.wait_for(self._reader.readuntil(b"\n"), timeout)
            except asyncio.TimeoutError:
                raise Timeout(f"recv on {self.address} timed out") from None
            except asyncio.IncompleteReadError:
                raise ChannelClosed(f"{self.address}: the peer closed the connection") from None
            except asyncio.LimitOverrunError:
                raise ProtocolError(f"a JSON-RPC line longer than {MAX_LINE} bytes") from None
            except (ConnectionError, OSError) as exc:
                raise ChannelClosed(f"{self.address}: {exc}") from exc
            if line.strip():
                return bytes(line[:-1])

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._writer.close()


async def aio_connect_lines(address: str, *, timeout: float | None = None, ssl: _ssl.SSLContext | None = None,
                            server_hostname: str | None = None) -> AsyncLineChannel:
    import asyncio

    scheme, host, port, path = _split(address)
    try:
        if scheme == "tcp":
            opened = asyncio.open_connection(host, port, ssl=ssl, limit=MAX_LINE,
                                             server_hostname=(server_hostname or host) if ssl else None)
        else:
            opened = asyncio.open_unix_connection(path, limit=MAX_LINE)
        reader, writer = await asyncio.wait_for(opened, timeout)
    except (ConnectionRefusedError, FileNotFoundError) as exc:
        raise NotFound(f"nothing listens at {address}") from exc
    except asyncio.TimeoutError:
        raise Timeout(f"connecting to {address} timed out") from None
    return AsyncLineChannel(reader, writer, address)


async def aio_listen_lines(address: str, on_channel: Any, *, ssl: _ssl.SSLContext | None = None,
                           insecure: bool = False, mode: int = 0o600) -> tuple[Any, str]:
    """Start an asyncio server calling ``on_channel(AsyncLineChannel)`` per connection;
    returns (server, real address)."""
    import asyncio

    scheme, host, port, path = _split(address)

    def connected(reader: Any, writer: Any) -> None:
        on_channel(AsyncLineChannel(reader, writer, real))

    if scheme == "tcp":
        from .._sockets._core import is_loopback as _is_loopback

        if not (ssl or insecure or _is_loopback(host)):
            raise PermissionDenied(f"refusing plain JSON-RPC on {host!r} beyond loopback: no authentication "
                                   "on this wire; pass ssl= (TLS), or insecure=True if this network is trusted")
        server = await asyncio.start_server(connected, host, port, ssl=ssl, limit=MAX_LINE)
        h, p = server.sockets[0].getsockname()[:2]
        real = f"{PREFIX}tcp://{'[' + h + ']' if ':' in h else h}:{p}"
    else:
        old = os.umask(0o777 & ~mode)
        try:
            server = await asyncio.start_unix_server(connected, path, limit=MAX_LINE)
        finally:
            os.umask(old)
        real = f"{PREFIX}unix://{path}"
    return server, real
