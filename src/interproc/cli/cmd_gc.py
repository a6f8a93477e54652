"""interproc gc: remove named objects whose owners are all dead."""

from __future__ import annotations

import sys

from .. import _registry
from ._objects import load_kinds


def register(sub) -> None:
    p = sub.add_parser("gc", help="remove objects whose owners have all died (all of yours, or those named)")
    p.add_argument("names", nargs="*", metavar="NAME", help="remove only stale objects with these names")
    p.add_argument("--dry-run", "-n", action="store_true", help="list what would be removed; remove nothing")
    p.set_defaults(func=run)


def run(args) -> int:
    load_kinds()
    names = args.names or None
    if args.dry_run:
        found = [info for _, info in _registry.stale(names)]
        for o in found:
            print(f"would remove {o.kind} {o.name!r} ({o.scope}) {o.path}")
        print(f"{len(found)} stale object(s) would be removed")
        return _report_missing(names, found)
    removed = _registry.collect() if names is None else _registry.remove_stale(names)
    for o in removed:
        print(f"removed {o.kind} {o.name!r} ({o.scope}) {o.path}")
    print(f"{len(removed)} stale object(s) removed")
    return _report_missing(names, removed)


def _report_missing(names: list[str] | None, handled: list[_registry.ObjectInfo]) -> int:
    """A NAME that matched no stale object is an error (on stderr), saying why."""
    if not names:
        return 0
    done = {o.name for o in handled}
    status = 0
    for name in names:
        if name in done:
            continue
        live = [o for o in _registry.list_objects() if o.name == name]
        if live:
            what = ", ".join(f"{o.kind} (owner pid {o.owner_pid}, {o.state})" for o in live)
            print(f"interproc gc: {name!r} is not stale, not removed: {what}", file=sys.stderr)
        else:
            print(f"interproc gc: no object named {name!r}", file=sys.stderr)
        status = 1
    return status
