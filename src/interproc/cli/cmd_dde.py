"""interproc dde services|request|poke|execute|advise|serve: DDE from the shell."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading

from .. import dde

AUTHKEY_ENV = "INTERPROC_AUTHKEY"


def register(sub) -> None:
    p = sub.add_parser("dde", help="talk to DDE services: request, poke, execute, advise; list services")
    dsub = p.add_subparsers(dest="action", metavar="ACTION")
    dsub.required = True
    s = dsub.add_parser("services", help="list running services and their topics")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=services)
    for action, extra, helptext in (
        ("request", ["item"], "print an item's value (cold link)"),
        ("poke", ["item", "value"], "poke VALUE into an item"),
        ("execute", ["dde_command"], "execute COMMAND and print the result"),
        ("advise", ["item"], "print each new value of an item until Ctrl-C (hot link; --warm: only that it changed)"),
    ):
        a = dsub.add_parser(action, help=helptext)
        a.add_argument("service")
        a.add_argument("topic")
        for name in extra:
            a.add_argument(name, metavar=name.replace("dde_", "").upper())
        a.add_argument("--timeout", type=float, default=5.0, help="wait this long for the service and each answer")
        a.add_argument("--host", default=None, help="tcp://HOST:PORT of a NetDDE server (authkey from $%s)" % AUTHKEY_ENV)
        if action == "advise":
            a.add_argument("--warm", action="store_true", help="warm link: print only the item's name on each change")
            a.add_argument("--ack", action="store_true", help="acknowledged link: every value, none dropped")
        a.set_defaults(func=globals()[f"do_{action}"])
    v = dsub.add_parser("serve", help="serve TOPIC with ITEM=VALUE items until Ctrl-C (pokes accepted, echoed)")
    v.add_argument("service")
    v.add_argument("topic")
    v.add_argument("items", nargs="*", metavar="ITEM=VALUE")
    v.set_defaults(func=serve)


def _connect(args) -> dde.Conversation:
    key = os.environ.get(AUTHKEY_ENV)
    kw = {"host": args.host, "authkey": key.encode()} if args.host and key else {"host": args.host}
    return dde.connect(args.service, args.topic, timeout=args.timeout, **kw)


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode("utf-8", "backslashreplace")


def services(args) -> int:
    found = dde.services()
    if args.json:
        print(json.dumps([{"service": s, "topics": t} for s, t in found]))
    else:
        for s, topics in found:
            print(f"{s}\t{' '.join(topics)}")
    return 0


def do_request(args) -> int:
    with _connect(args) as conv:
        print(_text(conv.request(args.item)))
    return 0


def do_poke(args) -> int:
    with _connect(args) as conv:
        conv.poke(args.item, args.value)
    return 0


def do_execute(args) -> int:
    with _connect(args) as conv:
        result = conv.execute(args.dde_command)
    if result is not None:
        print(result)
    return 0


def do_advise(args) -> int:
    conv = _connect(args)
    try:
        def hot(item: str, value: str | bytes) -> None:
            print(f"{item}\t{_text(value)}", flush=True)

        def warm(item: str) -> None:
            print(f"{item}\tchanged", flush=True)

        link = conv.advise(args.item, hot=not args.warm, callback=warm if args.warm else hot, ack=args.ack)
        print(f"advising {args.service}|{args.topic}!{args.item}; Ctrl-C to stop", file=sys.stderr, flush=True)
        while not link.closed:
            threading.Event().wait(0.2)  # short waits keep Ctrl-C prompt
        print(f"interproc dde advise: the service {args.service!r} went away", file=sys.stderr)
        return 1
    finally:
        conv.close()


def serve(args) -> int:
    with dde.Server(args.service) as srv:
        srv.add_topic(args.topic)
        for pair in args.items:
            item, sep, value = pair.partition("=")
            if not sep:
                raise ValueError(f"items are ITEM=VALUE, not {pair!r}")
            srv.set(args.topic, item, value)
        srv.on_poke = lambda topic, item, value: print(f"poke\t{topic}\t{item}\t{_text(value)}", flush=True)
        signal.signal(signal.SIGTERM, lambda *a: srv.close())
        print(f"serving {args.service}|{args.topic}; Ctrl-C to stop", file=sys.stderr, flush=True)
        srv.serve_forever()
    return 0
