"""interproc mailslot read|write: be a mailslot server, or write to one."""

from __future__ import annotations

import os
import sys

from ..mailslot import DOMAIN_TTL, Mailslot

AUTHKEY_ENV = "INTERPROC_AUTHKEY"


def register(sub) -> None:
    p = sub.add_parser("mailslot", help="read a mailslot (be its server) or write to one")
    msub = p.add_subparsers(dest="action", metavar="ACTION")
    msub.required = True

    r = msub.add_parser("read", help="create mailslot NAME and print the messages that arrive")
    r.add_argument("name")
    r.add_argument("--count", type=int, default=None, help="stop after N messages (default: run until Ctrl-C)")
    r.add_argument("--timeout", type=float, default=None, help="give up after S seconds without a message")
    r.add_argument("--max-message-size", type=int, default=64 * 1024)
    r.add_argument("--domain", action="store_true", help="also receive domain (multicast) broadcasts")
    _common(r)
    r.set_defaults(func=read)

    w = msub.add_parser("write", help="write TEXT to mailslot NAME")
    w.add_argument("name")
    w.add_argument("text")
    w.add_argument("--timeout", type=float, default=None, help="wait at most S seconds while the queue is full")
    w.add_argument("--domain", action="store_true", help="broadcast to every server of NAME on the network")
    w.add_argument("--ttl", type=int, default=DOMAIN_TTL, help="multicast TTL for --domain (default 1: local link)")
    _common(w)
    w.set_defaults(func=write)


def _common(p) -> None:
    p.add_argument("--scope", choices=("user", "global"), default="user")
    p.add_argument("--mode", type=lambda s: int(s, 8), default=None, help="octal file mode (scope global)")
    p.add_argument(
        "--authkey-env", default=AUTHKEY_ENV, metavar="VAR",
        help=f"environment variable holding the domain authkey (default {AUTHKEY_ENV})",
    )
    p.add_argument("--insecure", action="store_true", help="allow unsigned domain datagrams")


def _domain_options(args) -> dict:
    key = os.environ.get(args.authkey_env)
    return {"authkey": key.encode() if key else None, "insecure": args.insecure}


def read(args) -> int:
    kw = _domain_options(args) if args.domain else {}
    if args.scope == "global":
        kw["mode"] = args.mode
    with Mailslot.create(
        args.name, args.max_message_size, scope=args.scope, domain=args.domain, **kw
    ) as slot:
        if args.domain:
            print(f"receiving domain broadcasts on {slot.domain_address[0]}:{slot.domain_address[1]}", file=sys.stderr)
        n = 0
        while args.count is None or n < args.count:
            data = slot.read(timeout=args.timeout)
            sys.stdout.write(data.decode("utf-8", "backslashreplace") + "\n")
            sys.stdout.flush()
            n += 1
        if args.domain and (slot.dropped or slot.rejected):
            print(f"domain datagrams dropped: {slot.dropped}, rejected: {slot.rejected}", file=sys.stderr)
    return 0


def write(args) -> int:
    data = args.text.encode()
    if args.domain:
        Mailslot.write(args.name, data, scope="domain", ttl=args.ttl, **_domain_options(args))
    else:
        Mailslot.write(args.name, data, scope=args.scope, timeout=args.timeout)
    return 0
