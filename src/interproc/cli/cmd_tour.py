"""interproc tour: run every IPC method between two real processes."""

from __future__ import annotations

import json

from .tour import run_tour


def register(sub) -> None:
    p = sub.add_parser("tour", help="run each IPC method between two processes and report")
    p.add_argument("--only", help="run only the steps whose method contains this text")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    outcomes = run_tour(args.only)
    if args.json:
        print(json.dumps([
            {"method": o.step.method, "status": o.status, "detail": o.detail, "seconds": o.seconds}
            for o in outcomes
        ], indent=2))
    else:
        width = max([len(o.step.method) for o in outcomes] + [6])
        print(f"{'METHOD'.ljust(width)}  STATUS   TIME      WHAT HAPPENED")
        for o in outcomes:
            ms = f"{o.seconds * 1000:.1f} ms"
            print(f"{o.step.method.ljust(width)}  {o.status.ljust(7)}  {ms.rjust(8)}  {o.detail}")
        failed = sum(o.status == "FAILED" for o in outcomes)
        print(f"\n{len(outcomes)} steps: {len(outcomes) - failed} ran or were skipped with a reason, {failed} failed")
    return 1 if any(o.status == "FAILED" for o in outcomes) else 0
