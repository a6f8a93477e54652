"""interproc clip: read, set, list and watch the desktop clipboard."""

from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("clip", help="the desktop clipboard: get | set | formats | watch")
    p.add_argument("--selection", default="CLIPBOARD", choices=("CLIPBOARD", "PRIMARY"),
                   help="which selection (PRIMARY is the X11 middle-click one)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the other program")
    csub = p.add_subparsers(dest="clip_command", metavar="ACTION")
    csub.required = True

    g = csub.add_parser("get", help="print the clipboard content (raw bytes for non-text formats)")
    g.add_argument("--format", default="text/plain", help="format to read (default text/plain)")
    g.add_argument("--output", "-o", help="write to this file instead of stdout")
    g.set_defaults(func=_get)

    s = csub.add_parser("set", help="put TEXT, or a file's bytes, on the clipboard")
    s.add_argument("text", nargs="?", help="the text to copy ('-' reads the data from stdin)")
    s.add_argument("--file", help="copy this file's bytes instead")
    s.add_argument("--format", help="format of the data (default text/plain)")
    s.set_defaults(func=_set)

    f = csub.add_parser("formats", help="list the formats the current owner offers")
    f.add_argument("--raw", action="store_true", help="X11: the owner's raw TARGETS, aliases and all")
    f.set_defaults(func=_formats)

    w = csub.add_parser("watch", help="print a line for every clipboard change (by any program)")
    w.add_argument("--count", type=int, help="stop after this many changes")
    w.add_argument("--for", dest="seconds", type=float, help="stop when no change came for this many seconds")
    w.set_defaults(func=_watch)


def _get(args) -> int:
    from .. import clipboard

    data = clipboard.get(args.format, selection=args.selection, timeout=args.timeout)
    if args.output:
        with open(args.output, "wb") as f:
            f.write(data)
    else:
        sys.stdout.buffer.write(data)
        if args.format == "text/plain" and sys.stdout.isatty() and not data.endswith(b"\n"):
            sys.stdout.buffer.write(b"\n")
        sys.stdout.flush()
    return 0


def _set(args) -> int:
    from .. import clipboard

    if (args.text is None) == (args.file is None):
        raise ValueError("clip set takes either TEXT or --file FILE (not both, not neither)")
    if args.file is not None:
        with open(args.file, "rb") as f:
            data: bytes | str = f.read()
    elif args.text == "-":
        data = sys.stdin.buffer.read()
    else:
        data = args.text
    clipboard.set({args.format or "text/plain": data}, selection=args.selection, timeout=args.timeout)
    return 0


def _formats(args) -> int:
    from .. import clipboard

    if args.raw:
        if clipboard.backend_name() != "x11":
            raise ValueError("--raw lists X11 targets; this session uses the "
                             f"{clipboard.backend_name()} backend")
        from .._clipboard._x11 import X11Backend

        found = X11Backend(args.selection).targets(args.timeout)
    else:
        found = clipboard.formats(selection=args.selection, timeout=args.timeout)
    for fmt in found:
        print(fmt)
    return 0


def _watch(args) -> int:
    from .. import clipboard

    if args.count is not None and args.count < 1:
        raise ValueError(f"--count must be at least 1, got {args.count}")
    seen = 0
    with clipboard.changes(selection=args.selection, timeout=args.seconds) as stream:
        print(f"watching {args.selection} ({clipboard.backend_name()})", flush=True)
        for change in stream:
            seen += 1
            owner = f"owner=0x{change.owner:x}" if change.owner else "empty"
            print(f"{change.sequence} {change.selection} {change.reason} {owner}", flush=True)
            if args.count is not None and seen >= args.count:
                break
    return 0
