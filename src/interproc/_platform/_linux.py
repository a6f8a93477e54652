"""Linux: POSIX shared memory is a file in /dev/shm; liveness comes from /proc."""

from __future__ import annotations

import os
from typing import NamedTuple

SHM_DIR = "/dev/shm"


class ProcessId(NamedTuple):
    """A process identity that survives pid reuse: pid plus its start time."""

    pid: int
    start: int  # clock ticks since boot, field 22 of /proc/<pid>/stat


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after
    # its last ')'.  What follows starts at field 3, the state.
    return raw[raw.rfind(")") + 2 :].split()


def process_start(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


_self: ProcessId | None = None


def current_process() -> ProcessId:
    """This process's identity (recomputed after fork)."""
    global _self
    pid = os.getpid()
    if _self is None or _self.pid != pid:
        _self = ProcessId(pid, process_start(pid) or 0)
    return _self


def is_alive(ident: ProcessId | tuple[int, int]) -> bool:
    """True if that very process still runs.

    A zombie (exited, not yet reaped) counts as dead, and a pid reused by a
    newer process does not count as the old one: kill(pid, 0) alone would get
    both wrong.
    """
    pid, start = ident
    if pid <= 0:
        return False
    fields = _stat_fields(pid)
    if fields is None:
        return False
    if fields[0] in ("Z", "X", "x"):
        return False
    return start == 0 or int(fields[19]) == start


def shm_path(segment: str) -> str:
    """Filesystem path of the POSIX shared-memory object ``segment``."""
    return os.path.join(SHM_DIR, segment)


# -- local sockets ------------------------------------------------------------

class PeerCredentials(NamedTuple):
    """Who is at the other end of a local socket, as the kernel saw it at connect time."""

    pid: int
    uid: int
    gid: int


def peer_credentials(sock) -> PeerCredentials:
    """SO_PEERCRED of a connected AF_UNIX socket."""
    import socket
    import struct

    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return PeerCredentials(*struct.unpack("3i", raw))


_SO_ACCEPTCON = 0x10000


def unix_listeners(listening_only: bool = True) -> dict[str, int]:
    """Paths (abstract ones start with '@') of listening (or just bound) AF_UNIX sockets -> inode.

    Read from /proc/net/unix, so it sees every process of this network
    namespace without touching the sockets (a connect() probe would show up
    at the server as a client).
    """
    found: dict[str, int] = {}
    try:
        with open("/proc/net/unix") as f:
            next(f, None)
            for line in f:
                parts = line.split(None, 7)
                if len(parts) == 8 and (not listening_only or int(parts[3], 16) & _SO_ACCEPTCON):
                    found[parts[7].rstrip("\n")] = int(parts[6])
    except OSError:
        pass
    return found


def socket_owner(inode: int) -> int | None:
    """The pid of a process holding socket ``inode`` (one we may inspect), or None."""
    target = f"socket:[{inode}]"
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fd_dir = f"/proc/{entry}/fd"
        try:
            for fd in os.listdir(fd_dir):
                if os.readlink(f"{fd_dir}/{fd}") == target:
                    return int(entry)
        except OSError:
            continue
    return None
