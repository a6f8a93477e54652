"""``interproc ls`` for object servers: each live Server keeps a small JSON record
(address, pid, classes and live object counts) in the runtime directory."""

from __future__ import annotations

import json
import os
import stat
from typing import Any, Iterable

from .. import _registry
from .._naming import object_path, runtime_dir
from .._platform import is_alive

KIND = "objects"


def record_path(name: str) -> str:
    return object_path(KIND, name, suffix=".json")


def write_record(path: str, record: dict[str, Any]) -> None:
    """Replace the record atomically (a reader never sees half of it), mode 0600."""
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(record, f)
    os.replace(tmp, path)


def _records() -> Iterable[tuple[str, os.stat_result, dict[str, Any]]]:
    directory = runtime_dir("user")
    for entry in sorted(os.listdir(directory)):
        if not (entry.startswith(KIND + ".") and entry.endswith(".json")):
            continue
        path = os.path.join(directory, entry)
        try:
            st = os.lstat(path)
            with open(path) as f:
                record = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(record, dict):
            yield path, st, record


def _list() -> Iterable[_registry.ObjectInfo]:
    for path, st, rec in _records():
        pid = rec.get("pid")
        alive = isinstance(pid, int) and is_alive((pid, int(rec.get("start", 0))))
        classes = rec.get("classes") or {}
        yield _registry.ObjectInfo(
            kind=KIND, name=str(rec.get("address", "?")), scope="user", owner_pid=pid, size=None,
            mode=stat.S_IMODE(st.st_mode), state=_registry.STATE_ALIVE if alive else _registry.STATE_STALE,
            path=path,
            details={"objects": sum(int(c.get("live", 0)) for c in classes.values()),
                     "classes": ",".join(f"{k}={v.get('live', 0)}" for k, v in sorted(classes.items()))
                     or "-"},
        )


def _collect() -> Iterable[_registry.ObjectInfo]:
    removed = []
    for info in _list():
        if info.state == _registry.STATE_STALE:
            try:
                os.unlink(info.path)
                removed.append(info)
            except OSError:
                pass
    return removed


_registry.register(KIND, _list, _collect)
