"""The ``interproc`` command line.

Each subcommand is a module ``cmd_<name>.py`` in this package with a
``register(subparsers)`` function that adds its parser and sets
``func=handler``; they are found by name, so adding a command touches no
other file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from .. import __version__
from .._errors import InterprocError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="interproc",
        description="Inter-process communication: every classic IPC method, one API.",
    )
    parser.add_argument("--version", action="version", version=f"interproc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            importlib.import_module(f"{__name__}.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (InterprocError, OSError, ValueError) as exc:
        print(f"interproc {args.command}: {exc}", file=sys.stderr)
        return 1
