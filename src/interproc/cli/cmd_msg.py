"""interproc msg send|post|copy|broadcast|windows: window messages from the shell."""

from __future__ import annotations

import json
import sys
from typing import Any

from .. import messages


def _msg_id(text: str) -> int:
    """A number (0x4A, 1025) or a registered message's text (MyApp.Reload)."""
    try:
        return int(text, 0)
    except ValueError:
        return messages.register_message(text)


def register(sub) -> None:
    p = sub.add_parser("msg", help="send, post or broadcast window messages; list windows")
    msub = p.add_subparsers(dest="action", metavar="ACTION")
    msub.required = True
    for action, helptext in (("send", "send MSG to window NAME and print the handler's result"),
                             ("post", "post MSG to window NAME (returns once queued)")):
        a = msub.add_parser(action, help=helptext)
        a.add_argument("name", help="the window's name")
        a.add_argument("msg", help="a message id (0x400) or a registered message's text")
        a.add_argument("wparam", nargs="?", type=lambda s: int(s, 0), default=0)
        a.add_argument("lparam", nargs="?", type=lambda s: int(s, 0), default=0)
        a.add_argument("--data", default=None, help="text to attach as m.data")
        a.add_argument("--timeout", type=float, default=5.0)
        if action == "send":
            a.add_argument("--abort-if-hung", action="store_true", help="fail at once if the owner has not pumped for 5 s")
        a.set_defaults(func=send if action == "send" else post)
    c = msub.add_parser("copy", help="WM_COPYDATA: send TEXT (or stdin with -) to window NAME")
    c.add_argument("name")
    c.add_argument("text")
    c.add_argument("--tag", type=lambda s: int(s, 0), default=0)
    c.add_argument("--timeout", type=float, default=5.0)
    c.set_defaults(func=copy)
    b = msub.add_parser("broadcast", help="send MSG to every window of this user; print each result")
    b.add_argument("msg")
    b.add_argument("wparam", nargs="?", type=lambda s: int(s, 0), default=0)
    b.add_argument("lparam", nargs="?", type=lambda s: int(s, 0), default=0)
    b.add_argument("--timeout", type=float, default=1.0)
    b.set_defaults(func=broadcast)
    w = msub.add_parser("windows", help="list this user's windows and their owner pids")
    w.add_argument("--json", action="store_true")
    w.set_defaults(func=list_windows)


def _show(value: Any) -> str:
    if isinstance(value, BaseException):
        return f"error: {type(value).__name__}: {value}"
    return json.dumps(value)


def send(args) -> int:
    data = args.data.encode() if args.data is not None else None
    print(_show(messages.send_message(args.name, _msg_id(args.msg), args.wparam, args.lparam, data=data,
                                      timeout=args.timeout, abort_if_hung=args.abort_if_hung)))
    return 0


def post(args) -> int:
    data = args.data.encode() if args.data is not None else None
    messages.post_message(args.name, _msg_id(args.msg), args.wparam, args.lparam, data=data, timeout=args.timeout)
    return 0


def copy(args) -> int:
    data = sys.stdin.buffer.read() if args.text == "-" else args.text.encode()
    print(_show(messages.copy_data(args.name, data, args.tag, timeout=args.timeout)))
    return 0


def broadcast(args) -> int:
    results = messages.broadcast_message(_msg_id(args.msg), args.wparam, args.lparam, timeout=args.timeout)
    for name, value in results.items():
        print(f"{name}\t{_show(value)}")
    return 0 if not any(isinstance(v, BaseException) for v in results.values()) else 1


def list_windows(args) -> int:
    found = messages.windows()
    if args.json:
        print(json.dumps([{"name": n, "owner_pid": pid} for n, pid in found]))
    else:
        for n, pid in found:
            print(f"{n}\t{pid}")
    return 0
