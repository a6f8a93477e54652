"""Discovery of named objects, for ``interproc ls`` and ``interproc gc``.

Each kind of object registers a *lister* (what exists, with owner and
liveness) and optionally a *collector* (remove what only dead processes
held).  Nothing is imported here: modules register themselves when imported,
and the CLI imports every module that owns named objects.
"""

from __future__ import annotations

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

_listers: dict[str, Lister] = {}
_collectors: dict[str, Collector] = {}


def register(group: str, lister: Lister, collector: Collector | None = None) -> None:
    """Register how to list (and garbage-collect) one group of named objects."""
    _listers[group] = lister
    if collector is not None:
        _collectors[group] = collector


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
