"""interproc serial: list ports, make a virtual null-modem, send and receive."""

from __future__ import annotations

import json
import sys
import time


def register(sub) -> None:
    p = sub.add_parser("serial", help="serial ports: ports | pty | send | recv")
    ss = p.add_subparsers(dest="serial_command", metavar="ACTION")
    ss.required = True

    q = ss.add_parser("ports", help="list serial ports (and ppdev parallel ports)")
    q.add_argument("--json", action="store_true", help="print a JSON list")
    q.set_defaults(func=run_ports)

    q = ss.add_parser("pty", help="create a virtual null-modem (two ptys wired together) until Ctrl-C")
    q.set_defaults(func=run_pty)

    def port_options(q) -> None:
        q.add_argument("port", help="device path, e.g. /dev/ttyUSB0")
        q.add_argument("--baudrate", "-b", type=int, default=115200, help="default 115200")
        q.add_argument("--parity", default="N", help="N, E, O, M or S (default N)")
        q.add_argument("--framed", action="store_true",
                       help="COBS + CRC-32 message frames (what interproc's serial channel speaks)")
        q.add_argument("--shared", action="store_true", help="do not lock the port exclusively")

    q = ss.add_parser("send", help="write TEXT to PORT (one frame with --framed)")
    port_options(q)
    q.add_argument("text", help="the text to send (UTF-8)")
    q.add_argument("--newline", "-n", action="store_true", help="append a newline (raw mode)")
    q.add_argument("--timeout", type=float, default=10.0, help="give up after S seconds (default 10)")
    q.set_defaults(func=run_send)

    q = ss.add_parser("recv", help="print what arrives on PORT (one line per message with --framed)")
    port_options(q)
    q.add_argument("--count", "-c", type=int, help="stop after N messages (--framed) or N bytes")
    q.add_argument("--timeout", type=float,
                   help="stop after S seconds in all (an error if --count was not reached)")
    q.set_defaults(func=run_recv)


def run_ports(args) -> int:
    from .. import parallel, serial

    found = serial.ports()
    par = parallel.ports()
    if args.json:
        print(json.dumps({"serial": found, "parallel": par}, indent=2))
        return 0
    for p in found:
        extra = f"  {p['description']}" if p["description"] not in (None, "n/a") else ""
        ids = f"  [{p['vid']:04x}:{p['pid']:04x}]" if p["vid"] is not None else ""
        print(f"{p['device']}{extra}{ids}")
    for path in par:
        print(f"{path}  parallel port (ppdev)")
    if not found and not par:
        print("(no serial or parallel ports; `interproc serial pty` makes a virtual pair)")
    return 0


def run_pty(args) -> int:
    from .. import serial

    try:
        with serial.pty_pair() as cable:
            print(f"a {cable.a}")
            print(f"b {cable.b}")
            sys.stdout.flush()
            print(f"virtual null-modem {cable.a} <-> {cable.b}; Ctrl-C to stop", file=sys.stderr, flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:  # the way to stop it; the with-block closed the pair
        return 130  # like every other command stopped by Ctrl-C


def _open(args, *, receiver: bool = False):
    from .. import serial

    settings = dict(parity=args.parity, exclusive=not args.shared)
    if args.framed:
        # The receiver outlives senders: each `send` closes its channel
        # (a CLOSE frame), which must not end a `recv --count 5`.
        return serial.open_channel(args.port, args.baudrate, codec="raw", end_on_peer_close=not receiver,
                                   **settings)
    return serial.open(args.port, args.baudrate, **settings)


def run_send(args) -> int:
    data = args.text.encode()
    with _open(args) as port:
        if args.framed:
            port.send(data, timeout=args.timeout)
        else:
            port.write(data + (b"\n" if args.newline else b""), timeout=args.timeout)
            port.drain(timeout=args.timeout)
    return 0


def run_recv(args) -> int:
    from .._errors import ChannelClosed, Timeout

    if args.count is not None and args.count <= 0:
        raise ValueError(f"--count must be > 0, not {args.count}")
    if args.timeout is not None and args.timeout < 0:
        raise ValueError(f"--timeout must be >= 0, not {args.timeout}")
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    got = 0
    out = sys.stdout.buffer
    with _open(args, receiver=True) as port:
        print(f"recv: listening on {args.port}", file=sys.stderr, flush=True)
        try:
            while args.count is None or got < args.count:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                if args.framed:
                    msg = port.recv(timeout=left)
                    out.write(msg + b"\n")
                    got += 1
                else:
                    want = 65536 if args.count is None else min(65536, args.count - got)
                    chunk = port.read(want, timeout=left)
                    out.write(chunk)
                    got += len(chunk)
                out.flush()
        except Timeout:
            if args.count is not None:
                unit = "messages" if args.framed else "bytes"
                print(f"interproc serial recv: timed out after {got} of {args.count} {unit}", file=sys.stderr)
                return 1
        except ChannelClosed as exc:
            print(f"recv: {exc}", file=sys.stderr)
        except KeyboardInterrupt:
            pass
        if args.framed and port.dropped_frames:
            print(f"recv: dropped {port.dropped_frames} bad frames ({port.last_drop_reason})", file=sys.stderr)
    return 0
