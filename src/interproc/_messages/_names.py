"""Where windows live, and the registered-message table (no sockets here beyond a probe).

A window called NAME listens at ``<runtime dir>/msgwin.NAME.sock`` (mode
0600 in the 0700 runtime dir: another user can neither see nor reach it).
``register_message`` keeps its text -> id table in the shared-memory segment
``msgatom.table`` (entry i is id 0xC000 + i), read and extended under an
exclusive ``flock`` so concurrent first registrations in many processes agree.
The table is a persistent segment: it lasts until reboot (Win32: the login session).
"""

from __future__ import annotations

import fcntl
import os
import struct
import threading

from .._naming import Scope, object_path, runtime_dir, validate_name
from .._registry import ObjectInfo, register as _register_lister
from .._errors import ProtocolError
from ..shm import SharedMemory
from ._protocol import REGISTERED_FIRST, REGISTERED_LAST

KIND = "msgwin"
_SUFFIX = ".sock"
_cache: dict[str, int] = {}
_cache_lock = threading.Lock()


def endpoint_path(kind: str, name: str, what: str, scope: Scope = "user") -> str:
    """The socket file of a named endpoint (a window, a DDE service) in the runtime dir."""
    return object_path(kind, validate_name(name, what), scope, _SUFFIX)


def endpoint_names(kind: str, scope: Scope = "user") -> list[str]:
    """Names of ``kind`` with a socket file (alive or stale: the caller probes)."""
    prefix = kind + "."
    try:
        files = os.listdir(runtime_dir(scope))
    except OSError:
        return []
    return sorted(f[len(prefix) : -len(_SUFFIX)] for f in files if f.startswith(prefix) and f.endswith(_SUFFIX))


def window_path(name: str, scope: Scope = "user") -> str:
    return endpoint_path(KIND, name, "window name", scope)


def window_names(scope: Scope = "user") -> list[str]:
    """Names with a socket file (alive or stale: the caller probes)."""
    return endpoint_names(KIND, scope)


def _check_text(text: object) -> str:
    if not isinstance(text, str):
        raise TypeError(f"message text must be a str, not {type(text).__name__}")
    if not 1 <= len(text) <= 255:
        raise ValueError(f"message text must be 1..255 characters long (as an atom), got {len(text)}")
    if "\n" in text or "\r" in text or "\0" in text:
        raise ValueError(f"message text {text!r} contains a line break or NUL")
    return text


#: The registered-message table: a shared-memory segment of fixed entries
#: (u32 length + the casefolded text in UTF-8), entry i is id 0xC000 + i.
TABLE_NAME = "msgatom.table"
_HEADER = 64  # u32 count, then reserved
_ENTRY = 1024
_CAPACITY = REGISTERED_LAST - REGISTERED_FIRST + 1
_table: SharedMemory | None = None


def _open_table() -> SharedMemory:
    global _table
    if _table is None:
        # Persistent, as Win32's atom table lasts the login session: ids handed out stay
        # valid even while no process holds the table (``/dev/shm`` is emptied at reboot;
        # ``interproc gc`` leaves persistent segments alone, ``shm rm msgatom.table`` resets).
        _table = SharedMemory.create_or_open(TABLE_NAME, _HEADER + _CAPACITY * _ENTRY, init=lambda buf: None,
                                             persistent=True)
    return _table


def register_message(text: str) -> int:
    """The id (0xC000..0xFFFF) of ``text``; every process of this user gets the same one.

    Texts compare without regard to case, as RegisterWindowMessage's atoms do.
    """
    key = _check_text(text).casefold()
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        seg = _open_table()
        raw = key.encode()
        # flock on the segment's own file: whole-table exclusion between processes, released
        # by the kernel if a holder dies (the threads of this process are serialised by _cache_lock).
        fd = os.open(seg._path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            buf = seg.buf
            (count,) = struct.unpack_from("<I", buf, 0)
            if count > _CAPACITY:
                raise ProtocolError(f"the registered-message table claims {count} entries (at most {_CAPACITY})")
            for index in range(count):
                off = _HEADER + index * _ENTRY
                (n,) = struct.unpack_from("<I", buf, off)
                if n == len(raw) and buf[off + 4 : off + 4 + n] == raw:
                    break
            else:
                index = count
                if index >= _CAPACITY:
                    raise OverflowError("the registered-message table is full (16,384 texts)")
                off = _HEADER + index * _ENTRY
                struct.pack_into("<I", buf, off, len(raw))
                buf[off + 4 : off + 4 + len(raw)] = raw
                struct.pack_into("<I", buf, 0, count + 1)  # published last, under the lock
        finally:
            os.close(fd)
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
