"""Benchmark interproc's pipes and sockets against multiprocessing.Pipe, os.pipe and pyzmq.

    PYTHONPATH=src python benchmarks/transports_bench.py          # quick (~1 minute)
    PYTHONPATH=src python benchmarks/transports_bench.py --full   # 10x the messages
    PYTHONPATH=src python benchmarks/transports_bench.py --json out.json

The measurement code lives in interproc._bench.transports so that
``interproc bench`` can run the same thing.
"""

from __future__ import annotations

import argparse
import json
import platform

from interproc._bench.transports import format_table, overheads, run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="10x the messages (slower, steadier)")
    p.add_argument("--only", action="append", help="only this transport (repeatable)")
    p.add_argument("--json", help="also write the raw results here")
    p.add_argument("--repeat", type=int, default=3, help="rounds; each number is the best (default 3)")
    args = p.parse_args()
    results = run(quick=not args.full, only=args.only, repeat=args.repeat)
    print(f"# transports, {platform.python_implementation()} {platform.python_version()}, "
          f"{platform.machine()}, {'full' if args.full else 'quick'} run (best of {args.repeat}, interleaved)\n")
    print(format_table(results))
    print("\nframing overhead vs the raw transport it wraps (time per message; target < 20%):\n")
    print("| transport | baseline | test | overhead |\n|---|---|---|---:|")
    for o in overheads(results):
        print(f"| {o['transport']} | {o['baseline']} | {o['test']} | {o['overhead'] * 100:+.0f}% |")
    for r in results:
        if "skipped" in r:
            print(f"skipped {r['transport']} {r['test']}: {r['skipped']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
