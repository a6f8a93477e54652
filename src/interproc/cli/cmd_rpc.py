"""interproc rpc: call a method of an RPC server, or serve an object."""

from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Any


def register(sub) -> None:
    p = sub.add_parser("rpc", help="RPC: call | serve")
    ss = p.add_subparsers(dest="rpc_command", metavar="ACTION")
    ss.required = True

    def common(q) -> None:
        q.add_argument("--authkey-env", metavar="VAR", default="INTERPROC_AUTHKEY",
                       help="take the authkey from this environment variable (default INTERPROC_AUTHKEY; "
                            "unset or empty: no authkey)")
        q.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")

    q = ss.add_parser("call", help="call METHOD at ADDRESS with JSON arguments; print the JSON result")
    q.add_argument("address", help="e.g. tcp://127.0.0.1:5000, shm://NAME, jsonrpc+tcp://HOST:PORT")
    q.add_argument("method")
    q.add_argument("args", nargs="*", metavar="JSON-ARG", help="positional arguments, each a JSON value")
    q.add_argument("--named", metavar="JSON-OBJECT", help="named arguments as one JSON object")
    q.add_argument("--notify", action="store_true", help="one-way: send and print nothing")
    common(q)
    q.set_defaults(func=run_call)

    q = ss.add_parser("serve", help="expose MODULE:OBJECT's public methods at ADDRESS until Ctrl-C")
    q.add_argument("target", metavar="MODULE:OBJECT",
                   help="an object, a class (instantiated with no arguments) or a module (its functions)")
    q.add_argument("address")
    q.add_argument("--insecure", action="store_true", help="allow tcp:// beyond loopback without authkey/TLS")
    common(q)
    q.set_defaults(func=run_serve)


def _authkey(args) -> dict[str, Any]:
    key = os.environ.get(args.authkey_env, "")
    return {"authkey": key.encode()} if key else {}


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{what} {text!r} is not JSON ({exc}); quote strings: '\"text\"'") from None


def run_call(args) -> int:
    from .. import RemoteError, rpc

    positional = [_json(a, "argument") for a in args.args]
    named = _json(args.named, "--named") if args.named else {}
    if not isinstance(named, dict):
        raise ValueError("--named takes a JSON object")
    options = {} if args.address.startswith("jsonrpc+") else _authkey(args)
    with rpc.connect(args.address, timeout=args.timeout, **options) as p:
        if args.notify:
            p.notify(args.method, *positional, **named)
            return 0
        try:
            result = p.call(args.method, *positional, timeout=args.timeout, **named)
        except RemoteError as exc:
            print(f"interproc rpc call: remote {exc.remote_type}: {exc.message}", file=sys.stderr)
            if exc.traceback_text:
                print(exc.traceback_text.rstrip(), file=sys.stderr)
            return 2
    print(json.dumps(result, ensure_ascii=False))
    return 0


def load_target(spec: str) -> Any:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name:
        raise ValueError(f"{spec!r}: expected MODULE:OBJECT (or MODULE: for the module's functions)")
    sys.path.insert(0, os.getcwd())
    obj: Any = importlib.import_module(module_name)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj() if isinstance(obj, type) else obj


def run_serve(args) -> int:
    from .. import rpc

    obj = load_target(args.target)
    options: dict[str, Any] = {} if args.address.startswith("jsonrpc+") else _authkey(args)
    if args.insecure:
        options["insecure"] = True
    with rpc.Server(obj, args.address, **options) as srv:
        print(f"serving {args.target} at {srv.address} methods: {', '.join(srv.methods) or '(none public)'}",
              flush=True)
        try:
            srv.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0
