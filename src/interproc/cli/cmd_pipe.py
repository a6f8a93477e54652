"""interproc pipe serve|send|recv: named pipes from the shell."""

from __future__ import annotations

import sys

from .._errors import ChannelClosed
from .._pipes._named import MAX_INSTANCES
from ..pipes import NamedPipe


def register(sub) -> None:
    p = sub.add_parser("pipe", help="serve, send to or receive from a named pipe")
    cmds = p.add_subparsers(dest="pipe_command", metavar="ACTION")
    cmds.required = True

    s = cmds.add_parser("serve", help="create a pipe and print every message clients send")
    s.add_argument("name")
    s.add_argument("--mode", choices=("message", "byte"), default="message")
    s.add_argument("--max-instances", type=int, default=MAX_INSTANCES,
                   help=f"clients connected at once (default {MAX_INSTANCES}, as NamedPipe.serve)")
    s.add_argument("--echo", action="store_true", help="send each message back to its client")
    s.add_argument("--count", type=int, help="stop after this many messages")
    s.set_defaults(func=serve)

    c = cmds.add_parser("send", help="connect and send messages (arguments, or stdin lines)")
    c.add_argument("name")
    c.add_argument("messages", nargs="*", help="messages; none: one per stdin line")
    c.add_argument("--timeout", type=float, default=5.0, help="wait this long for the pipe (default 5 s)")
    c.add_argument("--reply", action="store_true", help="print one reply per message (use with serve --echo)")
    c.set_defaults(func=send)

    r = cmds.add_parser("recv", help="connect and print what the server sends until it closes")
    r.add_argument("name")
    r.add_argument("--timeout", type=float, default=5.0)
    r.add_argument("--count", type=int, help="stop after this many messages")
    r.set_defaults(func=recv)


def _show(data: bytes) -> str:
    return data.decode("utf-8", "backslashreplace")


def serve(args) -> int:
    seen = 0
    with NamedPipe.serve(args.name, mode=args.mode, max_instances=args.max_instances) as srv:
        print(f"serving {srv.address} ({args.mode} mode); Ctrl-C stops", file=sys.stderr, flush=True)
        while args.count is None or seen < args.count:
            with srv.accept() as ch:
                pid = ch.peer_credentials.pid
                for msg in ch:
                    print(f"[pid {pid}] {_show(msg)}", flush=True)
                    seen += 1
                    if args.echo:
                        try:
                            ch.send(msg)
                        except ChannelClosed:
                            break  # the client left without waiting for its echo
                    if args.count is not None and seen >= args.count:
                        break
    return 0


def send(args) -> int:
    messages = args.messages or (line.rstrip("\n") for line in sys.stdin)
    with NamedPipe.connect(args.name, timeout=args.timeout) as ch:
        for text in messages:
            ch.send(text.encode())
            if args.reply:
                print(_show(ch.recv(timeout=args.timeout)), flush=True)
    return 0


def recv(args) -> int:
    with NamedPipe.connect(args.name, timeout=args.timeout) as ch:
        for n, msg in enumerate(ch, 1):
            print(_show(msg), flush=True)
            if args.count is not None and n >= args.count:
                break
    return 0
