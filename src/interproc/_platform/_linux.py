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
