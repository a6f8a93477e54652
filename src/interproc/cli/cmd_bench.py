"""interproc bench: every transport and the peer libraries, between two processes."""

from __future__ import annotations

import json
import sys


def register(sub) -> None:
    p = sub.add_parser("bench", help="measure latency and throughput of every transport against peer libraries")
    p.add_argument("--quick", action="store_true", help="short runs (under a minute in all)")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    p.add_argument("--plot", metavar="FILE.png", help="also write a bar chart (needs matplotlib)")
    p.add_argument("--only", metavar="TEXT", help="run only the transports whose name contains TEXT")
    p.add_argument("--no-pin", action="store_true",
                   help="let the scheduler place both processes (default: one CPU each)")
    p.add_argument("--no-extras", action="store_true",
                   help="skip the other benchmark modules (C baselines, per-transport runs)")
    p.add_argument("--iterations", type=int, metavar="N",
                   help="fixed message counts instead of time budgets (for tests; numbers are not meaningful)")
    p.set_defaults(func=run)


def run(args) -> int:
    from .._bench.runner import Options, plot, run as run_bench, table

    if args.iterations is not None and args.iterations < 1:
        raise ValueError(f"--iterations must be >= 1, got {args.iterations}")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("interproc bench: --plot needs matplotlib (pip install matplotlib)", file=sys.stderr)
            return 2
    opts = Options(quick=args.quick, iterations=args.iterations, only=args.only, pin=not args.no_pin,
                   extras=not args.no_extras)

    def progress(name: str) -> None:
        if not args.json:
            print(f"  measuring {name} ...", file=sys.stderr, flush=True)

    report = run_bench(opts, progress)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(table(report))
    if args.plot:
        plot(report, args.plot)
        if not args.json:
            print(f"\nplot written to {args.plot}")
    return 0
