"""Connection setup of framed pipes and sockets, without I/O.

Both drivers — the blocking ones (:mod:`interproc._sockets._channel`,
:mod:`interproc._pipes._named`) and the asyncio ones
(:mod:`interproc._sockets._aio`, :mod:`interproc._pipes._aio`) — run the same
steps and only move bytes:

    options -> credentials -> TLS -> handshake -> trust decision

:class:`ServerSetup` and :class:`ClientSetup` hold every decision: which
peers are refused (and the refusal frame they get), which handshake state
machine (:mod:`interproc._handshake`) to run, and, at the end, what the
channel records (its name, ``trusted`` by :mod:`interproc._trust`,
``authenticated``, message or byte mode).  The drivers feed them the facts
they observed (peer credentials, the TLS context used) and carry the
handshake's bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

from ._errors import PermissionDenied
from ._framing import HEADER
from ._handshake import ClientHandshake, ServerHandshake
from ._lifecycle import log
from ._trust import peer_trusted, tls_verified


@dataclass
class Outcome:
    """What a set-up connection's channel records."""

    name: str
    trusted: bool
    authenticated: bool
    framed: bool
    mode: str
    credentials: Any = None
    peer_address: Any = None

    def apply(self, ch: Any) -> Any:
        """Set the peer facts on a channel (sync or async) and return it."""
        ch.peer_credentials, ch.authenticated, ch.mode = self.credentials, self.authenticated, self.mode
        if self.peer_address is not None:
            ch.peer_address = self.peer_address
        return ch


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


class ServerSetup:
    """One accepted connection of a listener.

    ``kind`` is ``"socket"`` (TCP/AF_UNIX, optional authkey and TLS) or
    ``"pipe"`` (a named pipe: no authkey, peers checked by uid, message or byte
    ``mode``).  ``refuse(creds)`` returns why a peer may not connect, or None.
    """

    def __init__(self, kind: str, label: str, *, authkey: bytes | None = None, tls: Any = None,
                 mode: str = "message", refuse: Callable[[Any], str | None] | None = None) -> None:
        self.kind, self.label, self.tls, self.mode = kind, label, tls, mode
        self._refuse = refuse
        self.what = f"client of {label}"
        self.handshake = (ServerHandshake(kind="pipe", mode=mode) if kind == "pipe"
                          else ServerHandshake(kind="socket", authkey=authkey))

    def check_peer(self, creds: Any) -> bytes | None:
        """The credentials step: None to go on, or the refusal frame to send
        before raising :meth:`refused`."""
        reason = self._refuse(creds) if (self._refuse is not None and creds is not None) else None
        if reason is None:
            return None
        self.refusal = reason
        return frame(self.handshake.greeting("denied", reason))

    def refused(self, creds: Any) -> PermissionDenied:
        return PermissionDenied(f"{self.label} refused pid {creds.pid}: {self.refusal}")

    def screen(self, creds: Any, send: Callable[[bytes], Any]) -> None:
        """The credentials step as both drivers run it: a refused peer is sent
        the refusal frame (best effort, by the driver's ``send``), the refusal
        is logged, and ``PermissionDenied`` raised."""
        frame = self.check_peer(creds)
        if frame:
            try:
                send(frame)
            except OSError:
                pass
            log.warning("%s: refused pid %s: %s", self.label, creds.pid, self.refusal)
            raise self.refused(creds)

    def outcome(self, creds: Any, peer: Any = None) -> Outcome:
        """The trust decision, once the handshake is done."""
        hs = self.handshake
        authenticated = bool(getattr(hs, "authenticated", False)) or tls_verified(self.tls)
        if self.kind == "pipe":
            name = f"{self.label} <- pid {creds.pid}"
        else:
            name = f"{self.label} <- {creds.pid if creds else peer}"
        return Outcome(name=name, trusted=peer_trusted(authenticated=authenticated, creds=creds),
                       authenticated=authenticated, framed=self.mode == "message", mode=self.mode,
                       credentials=creds, peer_address=peer)


class ClientSetup:
    """One outgoing connection: ``kind`` as for :class:`ServerSetup`; ``scope``
    ("user" or "global") for named pipes, whose user-scope server must be us."""

    def __init__(self, kind: str, what: str, *, authkey: bytes | None = None, tls: Any = None,
                 scope: str = "user", server_uid: int | None = None) -> None:
        if server_uid is not None and (isinstance(server_uid, bool) or not isinstance(server_uid, int)
                                       or server_uid < 0):
            raise ValueError(f"server_uid must be a uid (an int >= 0) or None, not {server_uid!r}")
        self.kind, self.what, self.tls, self.scope, self.server_uid = kind, what, tls, scope, server_uid
        self.handshake = ClientHandshake(kind=kind, authkey=None if kind == "pipe" else authkey, what=what)

    def check_peer(self, creds: Any) -> None:
        """The credentials step, before a byte is exchanged: a user-scope pipe
        served by another uid is refused, and so is a server that does not
        run as ``server_uid`` (SO_PEERCRED: the uid that bound the socket,
        which no other uid can fake — the client's pin on a global name)."""
        if self.kind == "pipe" and self.scope == "user" and creds.uid != os.getuid():
            raise PermissionDenied(f"{self.what} is served by uid {creds.uid}, not by you (uid {os.getuid()})")
        if self.server_uid is not None and creds.uid != self.server_uid:
            raise PermissionDenied(f"{self.what} is served by uid {creds.uid}, "
                                   f"not by the required uid {self.server_uid}")

    def outcome(self, creds: Any = None, peer: Any = None, name: str | None = None) -> Outcome:
        hs = self.handshake
        authenticated = bool(hs.authenticated) or tls_verified(self.tls)
        mode = getattr(hs, "mode", None) or "message"
        return Outcome(name=name or self.what, trusted=peer_trusted(authenticated=authenticated, creds=creds),
                       authenticated=authenticated, framed=mode == "message", mode=mode,
                       credentials=creds, peer_address=peer)
