"""Pipes: anonymous one-way pipes, named pipes (message or byte mode) and FIFOs.

    r, w = pipe()                                   # anonymous, one-way
    srv = NamedPipe.serve("jobs", mode="message", max_instances=4)
    ch = NamedPipe.connect("jobs", timeout=5)       # waits for a free instance
    peer = srv.accept(timeout=5)                    # peer.peer_credentials -> (pid, uid, gid)

See docs/pipes.md.
"""

from ._pipes._core import MAX_INSTANCES as MAX_INSTANCES
from ._pipes._named import (
    NamedPipe as NamedPipe,
    PipeChannel as PipeChannel,
    PipeServer as PipeServer,
)
from ._pipes._anonymous import (
    ENV_VAR as ENV_VAR,
    Fifo as Fifo,
    PipeReader as PipeReader,
    PipeWriter as PipeWriter,
    pipe as pipe,
    pipe_from_env as pipe_from_env,
    pipe_from_fd as pipe_from_fd,
    popen_with_pipe as popen_with_pipe,
)
from ._platform import PeerCredentials as PeerCredentials

__all__ = [
    "ENV_VAR",
    "Fifo",
    "MAX_INSTANCES",
    "NamedPipe",
    "PeerCredentials",
    "PipeChannel",
    "PipeReader",
    "PipeServer",
    "PipeWriter",
    "pipe",
    "pipe_from_env",
    "pipe_from_fd",
    "popen_with_pipe",
]
