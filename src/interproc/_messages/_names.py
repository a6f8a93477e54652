"""Where windows live, and the registered-message table (no sockets here beyond a probe).

A window called NAME listens at ``<runtime dir>/msgwin.NAME.sock`` (mode
0600 in the 0700 runtime dir: another user can neither see nor reach it).
``register_message`` keeps its text -> id table in ``<runtime dir>/msgatom.table``,
one text per line, id = 0xC000 + line number, read and extended under an
exclusive ``flock`` so concurrent first registrations in many processes agree.
The table lives as long as the runtime dir (a login session, as Win32's atoms).
"""

from __future__ import annotations

import fcntl
import os
import threading

from .._naming import Scope, object_path, runtime_dir, validate_name
from .._registry import ObjectInfo, register as _register_lister
from ._protocol import REGISTERED_FIRST, REGISTERED_LAST

KIND = "msgwin"
_SUFFIX = ".sock"
_TABLE = ("msgatom", "table")
_cache: dict[str, int] = {}
_cache_lock = threading.Lock()


def window_path(name: str, scope: Scope = "user") -> str:
    return object_path(KIND, validate_name(name, "window name"), scope, _SUFFIX)


def window_names(scope: Scope = "user") -> list[str]:
    """Names with a socket file (alive or stale: the caller probes)."""
    prefix = KIND + "."
    try:
        files = os.listdir(runtime_dir(scope))
    except OSError:
        return []
    return sorted(f[len(prefix) : -len(_SUFFIX)] for f in files if f.startswith(prefix) and f.endswith(_SUFFIX))


def table_path() -> str:
    return object_path(*_TABLE)


def _check_text(text: object) -> str:
    if not isinstance(text, str):
        raise TypeError(f"message text must be a str, not {type(text).__name__}")
    if not 1 <= len(text) <= 255:
        raise ValueError(f"message text must be 1..255 characters long (as an atom), got {len(text)}")
    if "\n" in text or "\r" in text or "\0" in text:
        raise ValueError(f"message text {text!r} contains a line break or NUL")
    return text


def register_message(text: str) -> int:
    """The id (0xC000..0xFFFF) of ``text``; every process of this user gets the same one.

    Texts compare without regard to case, as RegisterWindowMessage's atoms do.
    """
    key = _check_text(text).casefold()
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    path = table_path()
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released by close
        with os.fdopen(os.dup(fd), "r+", encoding="utf-8", newline="\n") as f:
            known = f.read().split("\n")
            if known and known[-1] == "":
                known.pop()
            lowered = [k.casefold() for k in known]
            if key in lowered:
                index = lowered.index(key)
            else:
                index = len(known)
                if REGISTERED_FIRST + index > REGISTERED_LAST:
                    raise OverflowError("the registered-message table is full (16,384 texts)")
                f.seek(0, os.SEEK_END)
                f.write(text + "\n")
                f.flush()
    finally:
        os.close(fd)
    with _cache_lock:
        _cache[key] = REGISTERED_FIRST + index
    return REGISTERED_FIRST + index


def list_endpoint_sockets(kind: str) -> list[ObjectInfo]:
    """``interproc ls`` rows for one kind of endpoint socket (``msgwin``, ``dde``) of this user.

    Liveness and the owner come from a bare connect and SO_PEERCRED (no
    handshake: the endpoint sees a client that leaves at once).
    """
    import socket
    import stat as _stat

    from .._platform import peer_credentials
    from .._registry import STATE_ALIVE, STATE_STALE

    rows = []
    directory = runtime_dir("user")
    for entry in sorted(os.listdir(directory)):
        if not (entry.startswith(kind + ".") and entry.endswith(_SUFFIX)):
            continue
        path = os.path.join(directory, entry)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not _stat.S_ISSOCK(st.st_mode):
            continue
        pid = None
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(1)
            s.connect(path)
            pid = peer_credentials(s).pid
        except OSError:
            pass
        finally:
            s.close()
        rows.append(ObjectInfo(kind=kind, name=entry[len(kind) + 1 : -len(_SUFFIX)], scope="user", owner_pid=pid,
                               size=None, mode=_stat.S_IMODE(st.st_mode),
                               state=STATE_ALIVE if pid else STATE_STALE, path=path, details={}))
    return rows


def collect_endpoint_sockets(kind: str) -> list[ObjectInfo]:
    """Remove the socket files of endpoints whose owners died (``interproc gc``)."""
    removed = []
    for info in list_endpoint_sockets(kind):
        if info.state == "stale":
            try:
                os.unlink(info.path)
                removed.append(info)
            except OSError:
                pass
    return removed


_register_lister(KIND, lambda: list_endpoint_sockets(KIND), lambda: collect_endpoint_sockets(KIND))
