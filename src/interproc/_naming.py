"""Names, scopes and the runtime directory shared by every named object.

A named object has a *kind* (``shm``, ``mutex``, ``pipe`` ...) and a *name*
of 1..128 characters from ``[A-Za-z0-9._-]``.  Scope ``user`` (the default)
is private to the calling uid: segments are ``/dev/shm/interproc.<uid>.<kind>.<name>``
with mode 0600, files and sockets live in a 0700 runtime directory owned by
the user.  Scope ``global`` is shared between users and needs an explicit
``mode=``; its segments are ``/dev/shm/interproc.global.<kind>.<name>`` and
its files live in ``/tmp/interproc-global`` (sticky, world-writable, like /tmp).
"""

from __future__ import annotations

import os
import re
import stat
from typing import Literal

from ._errors import PermissionDenied

Scope = Literal["user", "global"]
SCOPES: tuple[str, ...] = ("user", "global")
NAME_MAX = 128
PREFIX = "interproc"
GLOBAL_DIR = "/tmp/interproc-global"

_NAME_CHAR = re.compile(r"[A-Za-z0-9._-]")
_KIND = re.compile(r"[a-z][a-z0-9]*")


def validate_name(name: object, what: str = "name") -> str:
    """Return ``name`` if it is a valid object name, else raise ValueError naming the fault."""
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a str, not {type(name).__name__}")
    if not 1 <= len(name) <= NAME_MAX:
        raise ValueError(f"{what} must be 1..{NAME_MAX} characters long, got {len(name)}")
    for i, ch in enumerate(name):
        if not _NAME_CHAR.fullmatch(ch):
            raise ValueError(
                f"{what} {name!r} has the character {ch!r} at position {i}; "
                "only letters, digits, '.', '_' and '-' are allowed"
            )
    if name in (".", ".."):
        raise ValueError(f"{what} {name!r} is reserved")
    return name


def validate_scope(scope: object, mode: int | None) -> int:
    """Check ``scope`` and return the file mode its objects are created with."""
    if scope == "user":
        if mode is not None and mode & 0o077:
            raise ValueError(
                f"mode {mode:#o} would share a user-scope object with other users; "
                "use scope='global' for that"
            )
        return 0o600 if mode is None else mode
    if scope == "global":
        if mode is None:
            raise ValueError("scope='global' needs an explicit mode=, for example mode=0o660")
        if not 0 <= mode <= 0o777:
            raise ValueError(f"mode must be a permission mask between 0 and 0o777, got {mode:#o}")
        return mode
    raise ValueError(f"scope must be 'user' or 'global', not {scope!r}")


def _check_kind(kind: str) -> None:
    if not _KIND.fullmatch(kind):
        raise ValueError(f"bad object kind {kind!r}")


def segment_prefix(scope: Scope = "user") -> str:
    """Common prefix of every segment of a scope, e.g. ``interproc.1000.``."""
    owner = str(os.getuid()) if scope == "user" else "global"
    return f"{PREFIX}.{owner}."


def segment_name(kind: str, name: str, scope: Scope = "user") -> str:
    """The /dev/shm file name of a segment: ``interproc.<uid|global>.<kind>.<name>``."""
    _check_kind(kind)
    return f"{segment_prefix(scope)}{kind}.{validate_name(name)}"


def parse_segment_name(filename: str) -> tuple[Scope, str, str] | None:
    """Inverse of :func:`segment_name` for this user's and global segments."""
    for scope in SCOPES:
        prefix = segment_prefix(scope)  # type: ignore[arg-type]
        if filename.startswith(prefix):
            kind, _, name = filename[len(prefix) :].partition(".")
            if _KIND.fullmatch(kind) and name:
                return scope, kind, name  # type: ignore[return-value]
    return None


def _ensure_private_dir(path: str) -> str:
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise PermissionDenied(f"runtime dir {path} is not a directory")
    if st.st_uid != os.getuid():
        raise PermissionDenied(
            f"runtime dir {path} belongs to uid {st.st_uid}, not to you (uid {os.getuid()}); "
            "refusing to put private objects there"
        )
    if st.st_mode & 0o077:
        raise PermissionDenied(
            f"runtime dir {path} has mode {stat.S_IMODE(st.st_mode):#o}; it must be 0700 "
            f"(fix it with: chmod 700 {path})"
        )
    return path


def global_dir() -> str:
    """Where global-scope files live: ``$INTERPROC_GLOBAL_DIR`` or ``/tmp/interproc-global``."""
    return os.environ.get("INTERPROC_GLOBAL_DIR") or GLOBAL_DIR


def _checked_global_dir() -> str:
    """The global directory, checked on every use.

    Whoever owns the directory can unlink and replace any name in it despite
    the sticky bit, so it must belong to root (best: created at boot) or to
    the caller; one that another ordinary user created first is refused.
    """
    path = global_dir()
    try:
        os.mkdir(path, 0o1777)
        os.chmod(path, 0o1777)  # mkdir's mode is cut by the umask
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise PermissionDenied(f"{path} is not a directory (a symlink?); refusing to put global objects there")
    if st.st_uid not in (0, os.getuid()):
        raise PermissionDenied(
            f"{path} belongs to uid {st.st_uid}, who could replace any global object in it; "
            f"it must belong to root (as root: install -d -o root -g root -m 1777 {path})"
        )
    if not st.st_mode & stat.S_ISVTX:
        raise PermissionDenied(f"{path} must be a sticky directory (chmod 1777 {path})")
    return path


def runtime_dir(scope: Scope = "user") -> str:
    """The directory for a scope's files and sockets, created and checked on use.

    ``user``: ``$INTERPROC_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/interproc``,
    else ``/tmp/interproc-<uid>``; it must be owned by the caller with mode 0700.
    ``global``: ``/tmp/interproc-global``, sticky and world-writable.
    """
    if scope == "global":
        return _checked_global_dir()
    validate_scope(scope, None)
    env = os.environ.get("INTERPROC_RUNTIME_DIR")
    if env:
        return _ensure_private_dir(env)
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        return _ensure_private_dir(os.path.join(xdg, "interproc"))
    return _ensure_private_dir(f"/tmp/interproc-{os.getuid()}")


def object_path(kind: str, name: str, scope: Scope = "user", suffix: str = "") -> str:
    """Path of a file or socket for a named object: ``<runtime dir>/<kind>.<name><suffix>``."""
    _check_kind(kind)
    return os.path.join(runtime_dir(scope), f"{kind}.{validate_name(name)}{suffix}")


def check_private(st: os.stat_result, what: str, scope: Scope = "user") -> None:
    """Refuse a user-scope object that someone else owns or that others can reach."""
    if scope != "user":
        return
    if st.st_uid != os.getuid():
        raise PermissionDenied(f"{what} belongs to uid {st.st_uid}, not to you (uid {os.getuid()})")
    if st.st_mode & 0o077:
        raise PermissionDenied(
            f"{what} has mode {stat.S_IMODE(st.st_mode):#o}; a user-scope object must be 0600"
        )


def check_segment_file(st: os.stat_result, what: str, scope: Scope = "user") -> None:
    """Vet an opened segment file before it is mapped: a regular file, and for
    user scope ours alone.  Call it on the ``fstat`` of the O_NOFOLLOW
    descriptor, never on a path (the name may be swapped in between)."""
    if not stat.S_ISREG(st.st_mode):
        raise PermissionDenied(f"{what} is not a regular file (mode {st.st_mode:#o}); refusing to map it")
    check_private(st, what, scope)
