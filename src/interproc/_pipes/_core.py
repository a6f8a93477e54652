"""What the blocking and asyncio named-pipe drivers share: every decision, no waiting.

A named pipe is a user-private AF_UNIX socket per name (see :mod:`._named`);
both drivers find it by :func:`pipe_path`, connect with
:func:`interproc._sockets._core.try_connect_unix`, refuse peers by
:func:`refusal`, and run the setup of :mod:`interproc._setup` built here.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from .._address import query_options
from .._errors import PermissionDenied
from .._naming import Scope, object_path, runtime_dir
from .._setup import ClientSetup, ServerSetup

KIND = "pipe"
MODES = ("message", "byte")
#: PIPE_UNLIMITED_INSTANCES is 255 in Win32; the same default here.
MAX_INSTANCES = 255
#: Server options a connect() accepts in an address and ignores.
SERVER_ONLY = ("mode", "max_instances", "file_mode", "allowed_uids", "handshake_timeout")
#: Client options a serve() accepts in an address and ignores.
CLIENT_ONLY = ("server_uid",)
_CONVERTERS = {"max_instances": int, "max_message_size": int, "file_mode": lambda v: int(v, 8),
               "mode": str, "scope": str, "codec": str, "server_uid": int}


def lock_name(path: str) -> str:
    """The public first-instance token of a path (what global pipes use)."""
    digest = hashlib.sha256(os.fsencode(os.path.realpath(path))).hexdigest()[:40]
    return f"interproc-pipe-owner/{digest}"


_KEY_FILE = ".pipe-key"
_keys: dict[str, bytes] = {}


def user_key() -> bytes:
    """A random key kept in the private runtime dir (0600 in 0700), made once.

    Abstract sockets have no permissions: any uid may bind any name.  A
    user-scope token named after a hash of the path *and this key* cannot be
    predicted, so no other uid can take it first (squatting).
    """
    directory = runtime_dir("user")
    key = _keys.get(directory)
    if key is not None:
        return key
    path = os.path.join(directory, _KEY_FILE)
    for _ in range(50):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            tmp = f"{path}.{os.getpid()}.{os.urandom(4).hex()}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, os.urandom(32))
            finally:
                os.close(fd)
            try:
                os.link(tmp, path)  # whole or not at all; a racing process's key wins
            except FileExistsError:
                pass
            finally:
                os.unlink(tmp)
            continue
        try:
            st = os.fstat(fd)
            data = os.read(fd, 64)
        finally:
            os.close(fd)
        if st.st_uid != os.getuid() or st.st_mode & 0o077 or len(data) != 32:
            raise PermissionDenied(f"{path} is not a private 32-byte key of uid {os.getuid()}; remove it")
        _keys[directory] = data
        return data
    raise PermissionDenied(f"could not create {path}")


def token_name(path: str, scope: str) -> str:
    """The abstract-socket name whose owner serves the pipe at ``path`` (the
    first-instance token; see :func:`user_key`)."""
    if scope != "user":
        return lock_name(path)  # shared by every user: first come, first served
    digest = hashlib.sha256(user_key() + os.fsencode(os.path.realpath(path))).hexdigest()[:40]
    return f"interproc-pipe-owner/{digest}"


def pipe_path(name: str, scope: Scope) -> str:
    path = object_path(KIND, name, scope)
    if len(os.fsencode(path)) > 107:
        room = 107 - (len(os.fsencode(path)) - len(name))
        raise ValueError(
            f"pipe name {name!r} is too long for the runtime directory {runtime_dir(scope)}: "
            f"AF_UNIX paths are limited to 107 bytes, leaving {room} characters for the name"
        )
    return path


def refusal(scope: str, allowed_uids: Any, creds: Any) -> str | None:
    """Why the peer with ``creds`` may not use a pipe, or None."""
    if scope == "user" and creds.uid != os.getuid():
        return f"uid {creds.uid} may not use a user-scope pipe of uid {os.getuid()}"
    if allowed_uids is not None and creds.uid not in allowed_uids:
        return f"uid {creds.uid} is not allowed on this pipe"
    return None


def server_setup(server: Any) -> ServerSetup:
    """The setup of one accepted client of ``server`` (a ``PipeServer``)."""
    return ServerSetup(KIND, f"pipe {server.name!r}", mode=server.mode,
                       refuse=lambda creds: refusal(server.scope, server.allowed_uids, creds))


def client_setup(name: str, scope: Scope, server_uid: int | None = None) -> ClientSetup:
    """The setup of a connect to pipe ``name`` (``server_uid`` is checked here, first)."""
    return ClientSetup(KIND, f"pipe {name!r}", scope=scope, server_uid=server_uid)


def remove_if_mine(info: Any) -> bool:
    """``interproc gc``: unlink a stale pipe or FIFO of ours (never another uid's)."""
    if info.details.get("uid") != os.getuid():
        return False
    try:
        os.unlink(info.path)
        return True
    except OSError:
        return False


def options(addr: Any, kw: dict) -> dict:
    """The keyword arguments of a serve: an address's query and the caller's
    ``kw``, client-only options dropped."""
    return query_options(addr, kw, _CONVERTERS, drop=CLIENT_ONLY)


def connect_options(addr: Any, kw: dict) -> dict:
    """:func:`options` for a connect: server-only options dropped."""
    return query_options(addr, kw, _CONVERTERS, drop=SERVER_ONLY)
