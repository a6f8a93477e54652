"""interproc shm create|info|dump|rm: named shared memory from the shell."""

from __future__ import annotations

import json
import stat
import sys

from .._shm import SharedMemory, list_segments


def register(sub) -> None:
    p = sub.add_parser("shm", help="create, inspect, dump or remove shared memory")
    cmds = p.add_subparsers(dest="shm_command", metavar="ACTION")
    cmds.required = True

    c = cmds.add_parser("create", help="create a persistent segment (it stays until `shm rm`)")
    c.add_argument("name")
    c.add_argument("size", type=_size)
    c.add_argument("--global", dest="scope", action="store_const", const="global", default="user")
    c.add_argument("--mode", type=lambda s: int(s, 8), help="octal mode, needed with --global")
    c.set_defaults(func=_create)

    i = cmds.add_parser("info", help="show a segment's header")
    i.add_argument("name")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=_info)

    d = cmds.add_parser("dump", help="hex dump a range of a segment")
    d.add_argument("name")
    d.add_argument("--offset", type=_size, default=0)
    d.add_argument("--length", type=_size, default=256)
    d.add_argument("--raw", action="store_true", help="a plain POSIX segment with no interproc header")
    d.set_defaults(func=_dump)

    r = cmds.add_parser("rm", help="remove a segment's name")
    r.add_argument("name")
    r.set_defaults(func=_rm)


def _size(text: str) -> int:
    """Parse 4096, 64K, 16MiB, 1G ..."""
    units = {"": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
             "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}
    t = text.strip().lower()
    num = t.rstrip("kmgib")
    try:
        return int(num) * units[t[len(num):]]
    except (KeyError, ValueError):
        raise ValueError(f"bad size {text!r}; use e.g. 4096, 64K or 16MiB") from None


def _create(args) -> int:
    with SharedMemory.create(args.name, args.size, scope=args.scope, mode=args.mode, persistent=True) as shm:
        print(f"created {shm.name!r}: {shm.size} bytes, persistent (remove with: interproc shm rm {shm.name})")
    return 0


def _find(name: str):
    for info in list_segments():
        if info.kind == "shm" and info.name == name:
            return info
    return None


def _info(args) -> int:
    info = _find(args.name)
    if info is None:
        print(f"interproc shm info: no shm segment named {args.name!r}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(info.as_dict(), indent=2))
    else:
        print(f"name     {info.name}\nscope    {info.scope}\npath     {info.path}\nsize     {info.size}\n"
              f"mode     {stat.filemode(info.mode)[1:] if info.mode else '-'}\ncreator  {info.owner_pid}\n"
              f"state    {info.state}\nhandles  {info.details.get('handles')}")
    return 0


def _dump(args) -> int:
    with SharedMemory.open(args.name, raw=args.raw) as shm:  # NotFound at once if absent
        view = shm.view(args.offset, min(args.length, shm.size - args.offset))
        for row in range(0, len(view), 16):
            chunk = bytes(view[row : row + 16])
            hexpart = " ".join(f"{b:02x}" for b in chunk)
            text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
            print(f"{args.offset + row:08x}  {hexpart:<47}  |{text}|")
        del view
    return 0


def _rm(args) -> int:
    with SharedMemory.open(args.name) as shm:  # NotFound at once if absent
        shm.unlink()
    print(f"removed {args.name!r}")
    return 0
