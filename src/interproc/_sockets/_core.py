"""What the blocking and asyncio socket drivers share: every decision, no waiting.

The two drivers (:mod:`._channel`, :mod:`._aio`) set a connection up in the
same steps — resolve, connect (looking again while ``timeout=`` allows),
socket options, TLS, the handshake of :mod:`interproc._setup` — and differ
only in how they wait.  The steps that never wait live here: address options,
the network rule, name formatting, one non-blocking connect attempt, and
what a failed attempt means (retry after how long, ``NotFound``, ``Timeout``).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from typing import Any

from .._address import query_options
from .._deadline import now
from .._errors import NotFound, PermissionDenied, Timeout, map_os_error
from .._setup import ServerSetup

#: How long ``accept()`` gives one client to finish its handshake, so a silent
#: client cannot hold the accept loop forever.
HANDSHAKE_TIMEOUT = 10.0
RETRY_SLICE = 0.05  # how often connect(timeout=) looks again for a listener

_CONVERTERS = {"max_message_size": int, "backlog": int, "handshake_timeout": float, "codec": str,
               "server_hostname": str, "server_uid": int,
               "insecure": lambda v: v.lower() in ("1", "true", "yes")}
#: Listener options a connect() accepts in an address and ignores (one
#: address string serves both ends).
SERVER_ONLY = ("backlog", "handshake_timeout", "insecure")
#: Client options a listen() accepts in an address and ignores.
CLIENT_ONLY = ("server_hostname", "server_uid")


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, None)
        except OSError:
            return False
        return all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def check_network_rule(host: str, *, authkey: Any, ssl: Any, insecure: bool) -> None:
    """A TCP listener beyond loopback needs an authkey or TLS, or ``insecure=True``."""
    if not (authkey or ssl or insecure or is_loopback(host)):
        raise PermissionDenied(
            f"refusing to listen on {host!r} (reachable from other machines) without authkey= or ssl=; "
            "pass insecure=True if this network is trusted"
        )


def format_tcp(host: str, port: int) -> str:
    return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"


def tcp_options(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    # Notice a dead peer host in about a minute instead of two hours.
    for opt, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, opt):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), value)


def server_setup(listener: Any) -> ServerSetup:
    """The setup of one accepted connection of ``listener`` (either driver's)."""
    return ServerSetup("socket", listener.address, authkey=listener.authkey, tls=listener.ssl)


# -- connecting: one attempt, and what its failure means -------------------------

def retry_delay(deadline: float | None, what: str) -> float:
    """Seconds to sleep before looking for a listener again; ``Timeout`` once
    ``deadline`` has passed."""
    if deadline is None:
        return RETRY_SLICE
    left = deadline - now()
    if left <= 0:
        raise Timeout(f"nothing listened at {what} in time")
    return min(RETRY_SLICE, left)


def try_connect_unix(path: str, waiting: bool, what: str) -> socket.socket | None:
    """One non-blocking connect to the AF_UNIX ``path``: the connected socket,
    or None to try again later (nobody listens yet and we are ``waiting``, or
    the listener's backlog is full); ``NotFound`` if nobody listens and we
    are not waiting.  AF_UNIX connects complete at once or fail, so this
    never waits."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        sock.connect(path)
        return sock
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        sock.close()
        if not waiting:
            raise NotFound(f"nothing listens at {what}") from exc
    except BlockingIOError:
        sock.close()  # the backlog is full: the server is busy, try again
    except OSError as exc:
        sock.close()
        raise map_os_error(exc, f"connect to {what}") from exc
    return None


def resolve_tcp(host: str, port: int) -> list:
    """``getaddrinfo`` for a stream connection; ``NotFound`` for an unknown host."""
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise NotFound(f"cannot resolve {host!r}: {exc}") from exc


def tcp_socket(info: tuple) -> socket.socket:
    """A non-blocking socket for one ``getaddrinfo`` entry."""
    family, kind, proto, _, _ = info
    sock = socket.socket(family, kind, proto)
    sock.setblocking(False)
    return sock


def tcp_refused(err: int, waiting: bool, deadline: float | None, what: str) -> float:
    """After every address of a round failed with ``err``: the delay before the
    next round, or the error to raise (``NotFound``, ``Timeout``, mapped OSError)."""
    if err != errno.ECONNREFUSED:
        raise map_os_error(OSError(err, os.strerror(err)), f"connect to {what}")
    if not waiting:
        raise NotFound(f"nothing listens at {what} (connection refused)")
    return retry_delay(deadline, what)


# -- addresses --------------------------------------------------------------------

def connect_options(addr: Any, kw: dict) -> dict:
    """The keyword arguments of a connect: the address's query and ``kw``, listener-only options dropped.
    ``server_uid=`` (SO_PEERCRED) only means something for ``unix://``: on ``tcp://`` it is a ``ValueError``."""
    unix = ("server_hostname",) if addr.scheme == "unix" else ()
    opts = query_options(addr, kw, _CONVERTERS, drop=SERVER_ONLY + unix)
    if addr.scheme != "unix" and opts.pop("server_uid", None) is not None:
        raise ValueError("server_uid= applies to unix:// and pipe:// addresses (SO_PEERCRED), not to tcp://")
    return opts


def listen_options(addr: Any, kw: dict) -> dict:
    """The keyword arguments of a listen: the address's query and ``kw``, connect-only options dropped."""
    unix = ("insecure",) if addr.scheme == "unix" else ()
    return query_options(addr, kw, _CONVERTERS, drop=CLIENT_ONLY + unix)
