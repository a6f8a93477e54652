"""interproc objects: what an object server offers."""

from __future__ import annotations

import json
import os
from typing import Any


def register(sub) -> None:
    p = sub.add_parser("objects", help="distributed objects: ls")
    ss = p.add_subparsers(dest="objects_command", metavar="ACTION")
    ss.required = True
    q = ss.add_parser("ls", help="the ProgIDs, classes, interfaces and live object counts of the server at ADDRESS")
    q.add_argument("address", help="e.g. unix:///run/shapes.sock, tcp://127.0.0.1:5000, shm://NAME")
    q.add_argument("--authkey-env", metavar="VAR", default="INTERPROC_AUTHKEY",
                   help="take the authkey from this environment variable (default INTERPROC_AUTHKEY; "
                        "unset or empty: no authkey)")
    q.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    q.add_argument("--json", action="store_true", help="print a JSON list")
    q.set_defaults(func=run_ls)


def run_ls(args) -> int:
    from .. import objects

    key = os.environ.get(args.authkey_env, "")
    options: dict[str, Any] = {"authkey": key.encode()} if key else {}
    with objects.connect(args.address, timeout=args.timeout, **options) as conn:
        classes = conn.classes()
    if args.json:
        print(json.dumps(classes, indent=2))
        return 0
    rows = [("PROGID", "CLASS", "LIVE", "INTERFACES")]
    rows += [(c["progid"], c["class"], str(c["live"]), ", ".join(c["interfaces"])) for c in classes]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[3])
    if len(rows) == 1:
        print("(no classes registered)")
    return 0
