"""Linux: files that appear complete, and owner liveness held by a file lock.

A named object that other processes open must never be seen half made.
``publish_file`` builds it as an anonymous O_TMPFILE, lets the caller lock and
initialise it, and only then gives it its name with linkat(), which fails
with EEXIST like O_EXCL would: readers see either nothing or the finished
object.

Liveness: the owner holds an open-file-description lock (``F_OFD_SETLK``, a
write lock on the whole file) for as long as it lives.  The kernel drops it
when the last descriptor of that open file closes, and a dying process closes
its files before it turns into a zombie, so a query with ``F_OFD_GETLK``
answers "no owner" exactly when none is left -- no pid, no kill(pid, 0), no
pid-reuse race.  The query takes no lock and raises nothing, so it is cheap
enough (one system call) to ask before every write.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import struct

_AT_FDCWD = -100
_AT_SYMLINK_FOLLOW = 0x400
_libc = ctypes.CDLL(None, use_errno=True)
_libc.linkat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]


def make_anonymous_file(directory: str, mode: int) -> int:
    """An unnamed file in ``directory`` (same filesystem as its future name)."""
    fd = os.open(directory, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, mode)
    # The umask may have taken bits away; the object's mode is what was asked for.
    os.fchmod(fd, mode)
    return fd


def publish_file(fd: int, path: str) -> None:
    """Give the anonymous file ``fd`` the name ``path``; FileExistsError if taken."""
    # os.link() cannot follow the /proc/self/fd magic link (it calls link(2)),
    # so call linkat(AT_SYMLINK_FOLLOW) directly; unlike AT_EMPTY_PATH it needs
    # no privilege.
    rc = _libc.linkat(_AT_FDCWD, f"/proc/self/fd/{fd}".encode(), _AT_FDCWD, os.fsencode(path), _AT_SYMLINK_FOLLOW)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)


# struct flock: l_type, l_whence (short), l_start, l_len (off_t), l_pid (int), padding
_FLOCK = struct.Struct("hhqqi4x")
_OWNER_LOCK = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
_OWNER_QUERY = _FLOCK.pack(fcntl.F_RDLCK, os.SEEK_SET, 0, 0, 0)


def hold_owner_lock(fd: int) -> None:
    """Mark ``fd``'s open file as owned by this process for as long as it is open."""
    fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _OWNER_LOCK)


def owner_alive(fd: int) -> bool:
    """True while some other open file (its owner) holds the owner lock on ``fd``'s file."""
    return _FLOCK.unpack(fcntl.fcntl(fd, fcntl.F_OFD_GETLK, _OWNER_QUERY))[0] != fcntl.F_UNLCK
