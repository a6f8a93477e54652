"""Tour: anonymous pipe (parent -> child) and named pipe (client -> server)."""

from __future__ import annotations

import os
import sys

from . import Step, spawn_child, unique


def _anonymous() -> str:
    from ...pipes import popen_with_pipe

    cmd = [sys.executable, "-m", "interproc.cli.tour._child", f"{__name__}:anonymous_child", "[]"]
    import subprocess

    proc, w = popen_with_pipe(cmd, child="read", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with w:
            for word in ("one", "two", "three"):
                w.send(word.encode())
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"child failed: {err.strip()[-300:]}")
    got = out.strip().splitlines()[-1]
    return f"parent {os.getpid()} wrote 3 messages into a pipe; child {proc.pid} (fd via pass_fds) read {got}"


def anonymous_child() -> list[str]:
    from ...pipes import pipe_from_env

    with pipe_from_env() as r:
        return [m.decode() for m in r]  # until the parent closes its end


def _named() -> str:
    from ...pipes import NamedPipe

    name = unique("pipe")
    with NamedPipe.serve(name, mode="message", max_instances=1) as srv:
        with spawn_child(f"{__name__}:named_child", name) as child:
            with srv.accept(timeout=20) as ch:
                creds = ch.peer_credentials
                msg = ch.recv(timeout=20)
                ch.send(msg.upper())
                reply = child.result()
    return (f"server read {msg!r} from client pid {creds.pid} (uid {creds.uid}, via SO_PEERCRED) "
            f"on pipe://{name}; the client got back {reply!r}")


def named_child(name: str) -> str:
    from ...pipes import NamedPipe

    with NamedPipe.connect(name, timeout=20) as ch:
        ch.send(b"hello through a named pipe")
        return ch.recv(timeout=20).decode()


STEPS = [
    Step(50, "anonymous pipe", _anonymous),
    Step(51, "named pipe", _named),
]
