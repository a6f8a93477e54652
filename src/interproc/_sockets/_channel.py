"""Framed message channels over TCP and AF_UNIX stream sockets, and plain UDP.

Every connection starts with the handshake of :mod:`interproc._handshake`
(optionally authenticated with an authkey), optionally inside TLS, and then
carries length-prefixed frames (:mod:`interproc._framing`).

Network rule: a TCP listener on anything but a loopback address needs an
``authkey`` or an ``ssl`` context, or the explicit ``insecure=True``.
Pickle is refused on a channel whose peer is not authenticated (a TCP peer
without authkey or verified TLS, an AF_UNIX peer of another uid).
"""

from __future__ import annotations

import errno
import os
import select
import socket
import ssl as _ssl
import stat
import time
import warnings
from typing import Any

from .._channel import Listener
from .._codec import get_codec
from .._errors import (
    AlreadyExists,
    ChannelClosed,
    HandleClosed,
    InterprocError,
    MessageTooLarge,
    NotFound,
    PermissionDenied,
    map_os_error,
)
from .._accept import HandshakePool, PendingHandshake
from .._framing import DEFAULT_MAX_MESSAGE
from .._platform import PeerCredentials, peer_credentials
from .._setup import ClientSetup
from .._trust import refuse_pickle_early
from .._stream._channel import (
    SockIO,
    StreamChannel,
    deadline_of,
    run_client_handshake,
    wait_fd,
)
from ._core import (
    HANDSHAKE_TIMEOUT,
    check_network_rule,
    connect_options,
    format_tcp as _format_tcp,
    is_loopback as _is_loopback,
    listen_options,
    resolve_tcp,
    retry_delay,
    server_setup,
    tcp_options as _tcp_options,
    tcp_refused,
    tcp_socket,
    try_connect_unix,
)


class SocketChannel(StreamChannel):
    """A framed message channel on a connected socket.

    ``peer_credentials`` (pid, uid, gid) is set for AF_UNIX peers;
    ``authenticated`` is True when the peer proved the authkey or TLS
    verified its certificate.
    """

    peer_credentials: PeerCredentials | None = None
    authenticated: bool = False
    peer_address: Any = None


def _tls_handshake(sock: _ssl.SSLSocket, deadline: float | None, what: str) -> None:
    while True:
        try:
            sock.do_handshake()
            return
        except _ssl.SSLWantReadError:
            wait_fd(sock.fileno(), select.POLLIN, deadline, f"TLS handshake with {what}")
        except _ssl.SSLWantWriteError:
            wait_fd(sock.fileno(), select.POLLOUT, deadline, f"TLS handshake with {what}")
        except _ssl.SSLError as exc:
            raise PermissionDenied(f"TLS handshake with {what} failed: {exc}") from exc
        except OSError as exc:
            raise ChannelClosed(f"TLS handshake with {what}: {exc}") from exc


class ListeningSocket(Listener):
    """What a listener on a listening socket has (``SocketListener``,
    ``PipeServer``): ``fileno()`` and ``wake_after()`` of its handshake pool
    (:mod:`interproc._accept`), ``listening_socket``, the ResourceWarning."""

    _sock: socket.socket | None
    _pool: HandshakePool
    #: None, or a callable saying whether a new client may be taken now
    #: (a pipe's free instance); the pool leaves the backlog alone otherwise.
    _may_accept: Any = None
    label = "listener"

    def fileno(self) -> int:
        """The handshake pool's epoll descriptor: readable when ``accept()``
        can make progress (a new client, or a handshake in progress)."""
        if self._sock is None:
            raise HandleClosed(f"{self.label} was used after its close()")
        return self._pool.fileno(self._sock, self._may_accept)

    def wake_after(self) -> float | None:
        """Seconds until ``accept()`` has work though ``fileno()`` stays quiet
        (a pending handshake's deadline, or room freed while a pipe's
        instances were all taken); None: only when it fires."""
        return self._pool.wake_after(self._may_accept)

    def _finish(self, p: PendingHandshake) -> Any:
        """The handshake is done: the trust decision (``p.info`` is the setup and
        what to decide on), the channel, its options applied.  If building the
        channel fails, the client's connection is closed (``p.close()``)."""
        setup, *who = p.info
        out = setup.outcome(*who)
        try:
            ch = self._channel(p, out)
        except BaseException:
            p.close()
            raise
        return out.apply(ch)

    def _channel(self, p: PendingHandshake, out: Any) -> Any:
        """The channel for a client whose handshake ``p`` is done (each subclass its own kind)."""
        raise NotImplementedError

    @property
    def listening_socket(self) -> socket.socket | None:
        """The listening socket (None once closed): the asyncio driver accepts on it."""
        return self._sock

    def __del__(self) -> None:
        if getattr(self, "_sock", None) is not None:
            warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=2)
            self.close()


class SocketListener(ListeningSocket):
    """Accepts framed channels on a listening TCP or AF_UNIX socket."""

    def __init__(
        self,
        sock: socket.socket,
        address: str,
        *,
        family: int,
        authkey: bytes | None = None,
        ssl: _ssl.SSLContext | None = None,
        codec: Any = "json",
        max_message_size: int = DEFAULT_MAX_MESSAGE,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        path: str | None = None,
    ) -> None:
        sock.setblocking(False)
        self._sock = sock
        self.address = address
        self.family = family
        self.authkey, self.ssl = authkey, ssl
        self.codec = codec
        self.max_message_size = max_message_size
        self.handshake_timeout = handshake_timeout
        self._path = path
        self._path_ino = os.stat(path).st_ino if path else None
        self.label = f"listener {address}"
        self._pid = os.getpid()  # only this process removes the name
        self._pool = HandshakePool(f"listener {address}", self._start, self._finish)
        get_codec(codec)  # unknown codec names fail here, not at the first accept

    def __repr__(self) -> str:
        return f"<SocketListener {self.address}{' closed' if self._sock is None else ''}>"

    def accept(self, *, timeout: float | None = None) -> SocketChannel:
        """Wait for the next client and return its channel.

        Handshakes run side by side (:class:`~interproc._accept.HandshakePool`):
        a client that stays silent or trickles its hello does not delay the
        others; it is dropped (and logged on the ``interproc`` logger) after
        ``handshake_timeout``.  A client that speaks garbage or fails the
        authkey raises ``ProtocolError`` / ``PermissionDenied`` here; the
        listener stays open, so the caller just calls ``accept()`` again.
        """
        return self._pool.accept(lambda: self._sock, deadline_of(timeout))

    def _start(self, conn: socket.socket, peer: Any) -> PendingHandshake:
        setup = server_setup(self)
        what = f"client {peer or 'pid ?'} of {self.address}"
        try:
            conn.setblocking(False)
            creds = None
            if self.family == socket.AF_UNIX:
                creds = peer_credentials(conn)
                what = f"client pid {creds.pid} of {self.address}"
            else:
                _tcp_options(conn)
            if self.ssl is not None:
                conn = self.ssl.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
            io = SockIO(conn)
        except OSError as exc:
            conn.close()
            raise ChannelClosed(f"{what}: {exc}") from None
        except BaseException:
            conn.close()
            raise
        return PendingHandshake(io, setup.handshake, time.monotonic() + self.handshake_timeout, what,
                                tls=self.ssl is not None, info=(setup, creds, peer))

    def _channel(self, p: PendingHandshake, out: Any) -> SocketChannel:
        return SocketChannel(p.io, name=out.name, codec=self.codec, max_message_size=self.max_message_size,
                             trusted=out.trusted, decoder=p.decoder)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        sock.close()
        self._pool.close()
        if self._path and os.getpid() == self._pid:
            try:  # remove the socket file only if it is still ours
                if os.stat(self._path).st_ino == self._path_ino:
                    os.unlink(self._path)
            except OSError:
                pass


# -- AF_UNIX --------------------------------------------------------------------

def _probe_unix(path: str) -> bool:
    """True if something listens at ``path``."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(1)
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def bind_unix(path: str, mode: int = 0o600, backlog: int = 128) -> socket.socket:
    """A listening AF_UNIX socket at ``path`` with ``mode``, never hijacking a live one.

    The socket is bound under a temporary name, given its mode, then hard-
    linked into place: ``link()`` fails if the name exists, so a live server
    is never replaced and there is no moment when the socket has the default
    (umask) permissions.  A stale socket file (nobody listening) is replaced.
    """
    if len(os.fsencode(path)) > 107:
        raise ValueError(f"socket path {path!r} is longer than the 107 bytes AF_UNIX allows")
    tmp = f"{path}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    if len(os.fsencode(tmp)) > 107:
        tmp = os.path.join(os.path.dirname(path), f".{os.getpid()}.{os.urandom(4).hex()}.tmp")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(tmp)
        try:
            os.chmod(tmp, mode)
            sock.listen(backlog)
            for _ in range(3):
                try:
                    os.link(tmp, path)
                    break
                except FileExistsError:
                    st = os.lstat(path)
                    if not stat.S_ISSOCK(st.st_mode):
                        raise AlreadyExists(f"{path} exists and is not a socket") from None
                    if _probe_unix(path):
                        raise AlreadyExists(f"something is already listening at {path}") from None
                    os.unlink(path)  # stale: its server died without cleaning up
            else:
                raise AlreadyExists(f"could not claim {path}: another server keeps taking it")
        finally:
            os.unlink(tmp)
    except OSError as exc:
        sock.close()
        if isinstance(exc, InterprocError):
            raise
        raise map_os_error(exc, f"listen on {path}") from exc
    except BaseException:
        sock.close()
        raise
    return sock


def listen_unix(path: str, *, mode: int = 0o600, authkey: bytes | None = None, codec: Any = "json",
                max_message_size: int = DEFAULT_MAX_MESSAGE, backlog: int = 128,
                handshake_timeout: float = HANDSHAKE_TIMEOUT) -> SocketListener:
    """Listen for framed channels on the AF_UNIX socket ``path`` (created with ``mode``)."""
    path = os.path.abspath(path)
    sock = bind_unix(path, mode, backlog)
    return SocketListener(sock, f"unix://{path}", family=socket.AF_UNIX, authkey=authkey, codec=codec,
                          max_message_size=max_message_size, handshake_timeout=handshake_timeout, path=path)


def connect_unix_socket(path: str, deadline: float | None, waiting: bool, what: str) -> socket.socket:
    """A connected AF_UNIX stream socket; ``NotFound`` at once unless ``waiting``."""
    while (sock := try_connect_unix(path, waiting, what)) is None:
        time.sleep(retry_delay(deadline, what))
    return sock


def finish_connect(sock: Any, setup: ClientSetup, deadline: float | None, *, cls: Any = None, creds: Any = None,
                   peer: Any = None, name: str | None = None, codec: Any, max_message_size: int, ssl: Any = None,
                   server_hostname: str | None = None) -> Any:
    """The client's steps after connect, as in the asyncio driver: TLS, the
    handshake, the trust decision; a channel of ``cls`` (``SocketChannel``).
    ``sock`` is closed if a step fails."""
    try:
        if ssl is not None:
            sock = ssl.wrap_socket(sock, server_hostname=server_hostname, do_handshake_on_connect=False)
            _tls_handshake(sock, deadline, setup.what)
        io = SockIO(sock)
        decoder = run_client_handshake(io, setup.handshake, deadline, setup.what)
        out = setup.outcome(creds, peer, name=name)
        ch = (cls or SocketChannel)(io, name=out.name, framed=out.framed, codec=codec,
                                    max_message_size=max_message_size, trusted=out.trusted, decoder=decoder)
    except BaseException:
        sock.close()
        raise
    return out.apply(ch)


def connect_unix(path: str, *, timeout: float | None = None, authkey: bytes | None = None, codec: Any = "json",
                 max_message_size: int = DEFAULT_MAX_MESSAGE, server_uid: int | None = None) -> SocketChannel:
    """Connect to a framed AF_UNIX listener.  ``NotFound`` at once if nobody
    listens, unless ``timeout=`` is given (then wait that long for one).
    ``server_uid=`` requires the listening process to run as that uid
    (SO_PEERCRED), checked before a byte is exchanged."""
    deadline = deadline_of(timeout)
    what = f"unix://{path}"
    setup = ClientSetup("socket", what, authkey=authkey, server_uid=server_uid)  # checks server_uid first
    sock = connect_unix_socket(path, deadline, timeout is not None, what)
    try:
        creds = peer_credentials(sock)
        setup.check_peer(creds)
    except BaseException:
        sock.close()
        raise
    return finish_connect(sock, setup, deadline, creds=creds, codec=codec, max_message_size=max_message_size)


# -- TCP --------------------------------------------------------------------------

def listen_tcp(host: str = "127.0.0.1", port: int = 0, *, authkey: bytes | None = None,
               ssl: _ssl.SSLContext | None = None, insecure: bool = False, codec: Any = "json",
               max_message_size: int = DEFAULT_MAX_MESSAGE, backlog: int = 128,
               handshake_timeout: float = HANDSHAKE_TIMEOUT) -> SocketListener:
    """Listen for framed channels on TCP.  ``port=0`` picks a free port (see ``.address``).

    Beyond loopback an ``authkey`` or ``ssl`` context is required, unless
    ``insecure=True`` says that the network is trusted.
    """
    check_network_rule(host, authkey=authkey, ssl=ssl, insecure=insecure)
    if ssl is not None and not isinstance(ssl, _ssl.SSLContext):
        raise TypeError("ssl must be an ssl.SSLContext")
    refuse_pickle_early(codec, authkey=authkey, tls=ssl)
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise NotFound(f"cannot resolve {host!r}: {exc}") from exc
    family, _, _, _, sockaddr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise AlreadyExists(f"tcp port {host}:{port} is already in use") from exc
        raise map_os_error(exc, f"listen on {host}:{port}") from exc
    real_host, real_port = sock.getsockname()[:2]
    return SocketListener(sock, _format_tcp(real_host, real_port), family=family, authkey=authkey, ssl=ssl,
                          codec=codec, max_message_size=max_message_size, handshake_timeout=handshake_timeout)


def _connect_tcp_socket(host: str, port: int, deadline: float | None, waiting: bool, what: str) -> socket.socket:
    infos = resolve_tcp(host, port)
    while True:
        err = 0
        for info in infos:
            sock = tcp_socket(info)
            try:
                err = sock.connect_ex(info[4])
                if err == errno.EINPROGRESS:
                    wait_fd(sock.fileno(), select.POLLOUT, deadline, f"connect to {what}")
                    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err == 0:
                    return sock
            except BaseException:
                sock.close()
                raise
            sock.close()
        time.sleep(tcp_refused(err, waiting, deadline, what))


def connect_tcp(host: str, port: int, *, timeout: float | None = None, authkey: bytes | None = None,
                ssl: _ssl.SSLContext | None = None, server_hostname: str | None = None, codec: Any = "json",
                max_message_size: int = DEFAULT_MAX_MESSAGE) -> SocketChannel:
    """Connect to a framed TCP listener (TCP_NODELAY and keep-alive on)."""
    what = _format_tcp(host, port)
    refuse_pickle_early(codec, authkey=authkey, tls=ssl)
    deadline = deadline_of(timeout)
    sock = _connect_tcp_socket(host, port, deadline, timeout is not None, what)
    try:
        _tcp_options(sock)
    except BaseException:
        sock.close()
        raise
    return finish_connect(sock, ClientSetup("socket", what, authkey=authkey, tls=ssl), deadline, peer=(host, port),
                          codec=codec, max_message_size=max_message_size, ssl=ssl,
                          server_hostname=server_hostname or host)


# -- UDP ------------------------------------------------------------------------

MAX_DATAGRAM = 65507


class UdpSocket:
    """Plain UDP datagrams: unreliable, unordered, at most 65,507 bytes each.

    No handshake, no authentication: binding beyond loopback therefore needs
    ``insecure=True``.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, insecure: bool = False) -> None:
        if not (insecure or _is_loopback(host)):
            raise PermissionDenied(
                f"refusing to receive unauthenticated UDP on {host!r}; pass insecure=True if this network is trusted"
            )
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            raise map_os_error(exc, f"udp bind {host}:{port}") from exc
        self._sock.setblocking(False)
        self.address = self._sock.getsockname()[:2]

    def fileno(self) -> int:
        return self._sock.fileno()

    def sendto(self, data: Any, address: tuple[str, int], *, timeout: float | None = None) -> None:
        view = memoryview(data).cast("B")
        if view.nbytes > MAX_DATAGRAM:
            raise MessageTooLarge(f"a UDP datagram holds at most {MAX_DATAGRAM} bytes, not {view.nbytes}")
        deadline = deadline_of(timeout)
        while True:
            try:
                self._sock.sendto(view, address)
                return
            except (BlockingIOError, InterruptedError):
                wait_fd(self._sock.fileno(), select.POLLOUT, deadline, f"udp send to {address}")
            except OSError as exc:
                raise map_os_error(exc, f"udp send to {address}") from exc

    def recvfrom(self, *, timeout: float | None = None) -> tuple[bytes, tuple]:
        deadline = deadline_of(timeout)
        while True:
            try:
                data, addr = self._sock.recvfrom(MAX_DATAGRAM + 1)
                return data, addr[:2]
            except (BlockingIOError, InterruptedError):
                wait_fd(self._sock.fileno(), select.POLLIN, deadline, f"udp recv on {self.address}")
            except ConnectionRefusedError:
                continue  # ICMP port-unreachable from an earlier send: not our datagram
            except OSError as exc:
                raise map_os_error(exc, f"udp recv on {self.address}") from exc

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> "UdpSocket":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- addresses --------------------------------------------------------------------

def connect_address(addr: Any, *, timeout: float | None = None, **kw: Any) -> SocketChannel:
    opts = connect_options(addr, kw)
    if addr.scheme == "unix":
        return connect_unix(addr.path, timeout=timeout, **opts)
    return connect_tcp(addr.host, addr.port, timeout=timeout, **opts)


def listen_address(addr: Any, **kw: Any) -> SocketListener:
    opts = listen_options(addr, kw)
    if addr.scheme == "unix":
        return listen_unix(addr.path, **opts)
    return listen_tcp(addr.host, addr.port, **opts)
