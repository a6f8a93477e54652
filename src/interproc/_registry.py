"""Discovery of named objects, for ``interproc ls`` and ``interproc gc``.

Each kind of object registers a *lister* (what exists, with owner and
liveness) and optionally a *collector* (remove what only dead processes
held).  Nothing is imported here: modules register themselves when imported,
and the CLI imports every module that owns named objects.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

STATE_ALIVE = "alive"
STATE_STALE = "stale"
STATE_PERSISTENT = "persistent"


@dataclass
class ObjectInfo:
    kind: str
    name: str
    scope: str
    owner_pid: int | None
    size: int | None
    mode: int | None
    state: str  # alive | stale | persistent
    path: str
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


Lister = Callable[[], Iterable[ObjectInfo]]
Collector = Callable[[], Iterable[ObjectInfo]]
Remover = Callable[[ObjectInfo], bool]

_listers: dict[str, Lister] = {}
_collectors: dict[str, Collector] = {}
_removers: dict[str, Remover] = {}


def register(group: str, lister: Lister, collector: Collector | None = None,
             remove: Remover | None = None) -> None:
    """Register how to list (and garbage-collect) one group of named objects.

    ``remove(info)`` removes one stale object the lister reported (True if it
    did); it lets ``interproc gc NAME`` remove objects by name.
    """
    _listers[group] = lister
    if collector is not None:
        _collectors[group] = collector
    if remove is not None:
        _removers[group] = remove


def stale(names: Iterable[str] | None = None) -> list[tuple[str, ObjectInfo]]:
    """``(group, info)`` of the stale objects of this user (named ``names``)."""
    wanted = None if names is None else set(names)
    found = []
    for group, lister in _listers.items():
        for info in lister():
            if info.state != STATE_STALE or (wanted is not None and info.name not in wanted):
                continue
            if info.details.get("uid", os.getuid()) != os.getuid():
                continue  # gc never removes another user's objects
            found.append((group, info))
    return sorted(found, key=lambda gi: (gi[1].kind, gi[1].scope, gi[1].name))


def remove_stale(names: Iterable[str]) -> list[ObjectInfo]:
    """Remove the stale objects named ``names``; return what was removed."""
    removed = []
    for group, info in stale(names):
        remove = _removers.get(group)
        if remove is None:
            raise ValueError(f"{info.kind} objects cannot be removed by name; run `interproc gc` without names")
        if remove(info):
            removed.append(info)
    return removed


def list_objects() -> list[ObjectInfo]:
    found: list[ObjectInfo] = []
    for lister in _listers.values():
        found.extend(lister())
    return sorted(found, key=lambda o: (o.kind, o.scope, o.name))


def collect() -> list[ObjectInfo]:
    """Remove every object whose owners are all dead; return what was removed."""
    removed: list[ObjectInfo] = []
    for collector in _collectors.values():
        removed.extend(collector())
    return removed
