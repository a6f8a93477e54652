"""The one rule for who may send us ``pickle``.

Unpickling runs code chosen by the sender, so a channel accepts the pickle
codec only from a peer it knows:

* the same user, checked by the kernel (``SO_PEERCRED`` on AF_UNIX sockets and
  named pipes; the 0600 segment of a user-scope ``shm://`` channel), or
* a peer that proved the shared ``authkey`` in the handshake, or
* a peer whose certificate TLS verified (``CERT_REQUIRED``).

Everything else — TCP without authkey or verified TLS, another uid, a serial
line, a global-scope segment — is untrusted, and ``get_codec("pickle",
trusted=False)`` refuses.  Every transport asks :func:`peer_trusted`.
"""

from __future__ import annotations

import os
import ssl as _ssl
from typing import Any


def tls_verified(ctx: Any) -> bool:
    """True when ``ctx`` is an SSLContext that makes TLS verify the peer's certificate."""
    return isinstance(ctx, _ssl.SSLContext) and ctx.verify_mode == _ssl.CERT_REQUIRED


def same_user(creds: Any) -> bool:
    """``creds`` (PeerCredentials or None) name this process's uid."""
    return creds is not None and creds.uid == os.getuid()


def peer_trusted(*, authenticated: bool = False, tls: Any = None, creds: Any = None) -> bool:
    """The pickle trust rule: authkey proven, TLS-verified, or the same uid."""
    return bool(authenticated) or tls_verified(tls) or same_user(creds)


def refuse_pickle_early(codec: Any, *, authkey: Any = None, tls: Any = None) -> None:
    """Before connecting/listening on a network transport: refuse ``codec="pickle"``
    that no handshake could make trusted (no authkey, no verifying TLS)."""
    if codec == "pickle" and not (authkey or tls_verified(tls)):
        from ._codec import get_codec

        get_codec("pickle", trusted=False)  # raises, naming the rule
