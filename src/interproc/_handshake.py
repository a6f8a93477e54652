"""The connection handshake of framed pipes and sockets, without I/O.

Every connection starts with small framed JSON messages, so a stranger that
speaks another protocol is told apart at once (``ProtocolError`` in the
server's ``accept()``) and the optional authkey check happens before any
application data::

    server -> client   greeting {"proto": "interproc/1", "kind", "mode", "status", "challenge"?}
    client -> server   hello    {"proto": "interproc/1", "kind", "challenge"?, "proof"?}
    server -> client   verdict  {"status": "ok", "proof"} | {"status": "denied"}   (authkey only)

With an authkey both sides prove knowledge of it (mutual challenge-response,
HMAC-SHA256 over both random challenges, with the role in the message so one
side's proof cannot be replayed as the other's).  The key never travels.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Any

from ._codec import nesting_depth
from ._errors import PermissionDenied, ProtocolError

PROTO = "interproc/1"
#: Handshake frames are tiny; a bigger one is a stranger, not a peer.
MAX_HANDSHAKE_FRAME = 4096
_CHALLENGE = 32


def _dump(msg: dict) -> bytes:
    return json.dumps(msg, separators=(",", ":")).encode()


def _load(frame: bytes, what: str) -> dict:
    # Handshake messages are flat objects of strings: anything nested deeper
    # is refused by a byte scan before the (recursive) JSON decoder sees it.
    frame = bytes(frame)
    if len(frame) > MAX_HANDSHAKE_FRAME or nesting_depth(frame, 1) > 1:
        raise ProtocolError(f"the peer's {what} is not an interproc handshake (too large or nested)")
    try:
        msg = json.loads(frame)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ProtocolError(f"the peer's {what} is not an interproc handshake (not JSON)") from None
    if not isinstance(msg, dict) or msg.get("proto", PROTO) != PROTO:
        raise ProtocolError(f"the peer's {what} is not an interproc/1 handshake")
    if not all(isinstance(v, (str, int, bool)) or v is None for v in msg.values()):
        raise ProtocolError(f"the peer's {what} is not an interproc/1 handshake (nested values)")
    return msg


def _hex(msg: dict, key: str, what: str) -> bytes:
    value = msg.get(key)
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else None
    except ValueError:
        raw = None
    if raw is None or len(raw) != _CHALLENGE:
        raise ProtocolError(f"the peer's {what} has a malformed {key!r}")
    return raw


def _proof(authkey: bytes, role: bytes, first: bytes, second: bytes) -> bytes:
    return hmac.new(authkey, b"interproc/1 " + role + first + second, hashlib.sha256).digest()


def _check_key(authkey: Any) -> bytes | None:
    if authkey is None:
        return None
    if isinstance(authkey, str):
        authkey = authkey.encode()
    if not isinstance(authkey, (bytes, bytearray)) or not authkey:
        raise TypeError("authkey must be non-empty bytes")
    return bytes(authkey)


class ServerHandshake:
    """The accepting side.  ``greeting()`` first, then ``receive(frame)`` until ``done``."""

    def __init__(self, *, kind: str, mode: str = "message", authkey: bytes | None = None) -> None:
        self.kind, self.mode = kind, mode
        self.authkey = _check_key(authkey)
        self.done = False
        self.authenticated = False
        self._challenge = os.urandom(_CHALLENGE) if self.authkey else b""

    def greeting(self, status: str = "ok", reason: str = "") -> bytes:
        msg: dict[str, Any] = {"proto": PROTO, "kind": self.kind, "mode": self.mode, "status": status}
        if reason:
            msg["reason"] = reason
        if self.authkey:
            msg["challenge"] = self._challenge.hex()
        return _dump(msg)

    def receive(self, frame: bytes) -> bytes | None:
        """Take the client's hello; return the verdict to send (authkey only).

        Raises ``ProtocolError`` for a malformed hello and ``PermissionDenied``
        for a wrong proof (after which the verdict ``denied`` is in ``.reply``).
        """
        msg = _load(frame, "hello")
        if msg.get("kind") != self.kind:
            raise ProtocolError(f"the peer is a {msg.get('kind')!r} client, this is a {self.kind!r} server")
        self.done = True
        if not self.authkey:
            return None
        theirs = _hex(msg, "challenge", "hello")
        proof = msg.get("proof")
        expected = _proof(self.authkey, b"client", self._challenge, theirs)
        if not isinstance(proof, str) or not hmac.compare_digest(proof.encode(), expected.hex().encode()):
            self.reply = _dump({"status": "denied", "reason": "wrong authkey"})
            raise PermissionDenied("a client failed the authkey check (wrong key)")
        self.authenticated = True
        return _dump({"status": "ok", "proof": _proof(self.authkey, b"server", theirs, self._challenge).hex()})


class ClientHandshake:
    """The connecting side: ``receive(frame)`` returns what to send next, until ``done``."""

    def __init__(self, *, kind: str, authkey: bytes | None = None, what: str = "server") -> None:
        self.kind, self.what = kind, what
        self.authkey = _check_key(authkey)
        self.done = False
        self.authenticated = False
        self.mode = "message"
        self._challenge = os.urandom(_CHALLENGE) if self.authkey else b""
        self._theirs = b""
        self._greeted = False

    def receive(self, frame: bytes) -> bytes | None:
        if not self._greeted:
            return self._greeting(frame)
        msg = _load(frame, "verdict")
        if msg.get("status") != "ok":
            raise PermissionDenied(f"{self.what} refused the authkey")
        proof = msg.get("proof")
        expected = _proof(self.authkey or b"", b"server", self._challenge, self._theirs)
        if not isinstance(proof, str) or not hmac.compare_digest(proof.encode(), expected.hex().encode()):
            raise PermissionDenied(f"{self.what} failed the authkey check: it does not know the key")
        self.authenticated = self.done = True
        return None

    def _greeting(self, frame: bytes) -> bytes:
        msg = _load(frame, "greeting")
        self._greeted = True
        status = msg.get("status")
        if status != "ok":
            reason = msg.get("reason") or status
            raise PermissionDenied(f"{self.what} refused the connection: {reason}")
        if msg.get("kind") != self.kind:
            raise ProtocolError(f"{self.what} is a {msg.get('kind')!r} endpoint, not a {self.kind!r} one")
        mode = msg.get("mode", "message")
        if mode not in ("message", "byte"):
            raise ProtocolError(f"{self.what} announced an unknown mode {mode!r}")
        self.mode = mode
        hello: dict[str, Any] = {"proto": PROTO, "kind": self.kind}
        if "challenge" in msg and not self.authkey:
            raise PermissionDenied(f"{self.what} requires an authkey; pass authkey=")
        if self.authkey:
            if "challenge" not in msg:
                raise PermissionDenied(
                    f"{self.what} does not authenticate itself, but an authkey was given; refusing to talk to it"
                )
            self._theirs = _hex(msg, "challenge", "greeting")
            hello["challenge"] = self._challenge.hex()
            hello["proof"] = _proof(self.authkey, b"client", self._theirs, self._challenge).hex()
        else:
            self.done = True
        return _dump(hello)
