"""interproc gc: remove named objects whose owners are all dead."""

from __future__ import annotations

from .. import _registry
from ._objects import load_kinds


def register(sub) -> None:
    p = sub.add_parser("gc", help="remove objects whose owners have all died")
    p.set_defaults(func=run)


def run(args) -> int:
    load_kinds()
    removed = _registry.collect()
    for o in removed:
        print(f"removed {o.kind} {o.name!r} ({o.scope}) {o.path}")
    print(f"{len(removed)} stale object(s) removed")
    return 0
