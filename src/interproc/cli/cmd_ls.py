"""interproc ls: every live (and stale) named object."""

from __future__ import annotations

import json
import stat

from .. import _registry
from ._objects import KINDS, load_kinds


def register(sub) -> None:
    p = sub.add_parser("ls", help="list named objects: kind, name, owner, size, mode, state")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.add_argument("--kind", choices=KINDS, help="only objects of this kind")
    p.set_defaults(func=run)


def run(args) -> int:
    load_kinds()
    objs = [o for o in _registry.list_objects() if not args.kind or o.kind == args.kind]
    if args.json:
        print(json.dumps([o.as_dict() for o in objs], indent=2))
        return 0
    rows = [("KIND", "SCOPE", "NAME", "PID", "SIZE", "MODE", "STATE", "DETAILS")]
    for o in objs:
        details = " ".join(f"{k}={v}" for k, v in o.details.items())
        rows.append((
            o.kind, o.scope, o.name,
            "-" if o.owner_pid is None else str(o.owner_pid),
            "-" if o.size is None else str(o.size),
            "-" if o.mode is None else stat.filemode(o.mode)[1:],
            o.state, details,
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    if len(rows) == 1:
        print("(no named objects)")
    return 0
