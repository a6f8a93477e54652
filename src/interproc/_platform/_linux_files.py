"""Linux: files that appear complete, and owner liveness held by a file lock.

A named object that other processes open must never be seen half made.
``publish_file`` builds it as an anonymous O_TMPFILE, lets the caller lock and
initialise it, and only then gives it its name with linkat(), which fails
with EEXIST like O_EXCL would: readers see either nothing or the finished
object.

Liveness: the owner holds ``flock(LOCK_EX)`` on its descriptor for as long as
it lives.  The kernel drops the lock when the last descriptor of that open
file closes, and a dying process closes its files before it turns into a
zombie, so a probe with ``LOCK_SH | LOCK_NB`` succeeds exactly when no owner
is left -- no pid, no kill(pid, 0), no pid-reuse race.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os

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


def hold_owner_lock(fd: int) -> None:
    """Mark ``fd``'s open file as owned by this process for as long as it is open."""
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def owner_alive(fd: int) -> bool:
    """True while some process holds the owner lock on the file behind ``fd``."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return True
        raise
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False
