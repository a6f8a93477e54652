"""Anonymous pipes (pipe(2)) and POSIX FIFOs.

An anonymous pipe is one-way: ``r, w = pipe()``.  Each end is a
:class:`~interproc.ReceiveChannel` or :class:`~interproc.SendChannel` half
with both faces of the classic API: ``write(b)`` / ``read(n)`` on the raw byte stream (``read``
returns ``b""`` once every writer has closed), and ``send`` / ``recv`` for
whole messages (length-prefixed frames; do not mix the two on one pipe).
Writing after the reader has gone raises ``ChannelClosed`` (EPIPE; Python
ignores SIGPIPE).

The parent-child pattern: :func:`popen_with_pipe` starts a child with one end
(``subprocess`` ``pass_fds``) and tells it the descriptor in the environment
variable ``INTERPROC_PIPE``; the child calls :func:`pipe_from_env`.
"""

from __future__ import annotations

import errno
import os
import select
import stat
import subprocess
import time
from typing import Any

from .. import _registry
from .._errors import AlreadyExists, NotFound, Timeout, map_os_error
from .._framing import DEFAULT_MAX_MESSAGE
from .._naming import GLOBAL_DIR, Scope, check_private, object_path, runtime_dir, validate_scope
from ._core import remove_if_mine
from .._stream._channel import FdIO, StreamEnd, StreamReceiver, StreamSender, deadline_of

ENV_VAR = "INTERPROC_PIPE"
_OPEN_SLICE = 0.02  # how often opening a FIFO for writing looks for a reader


class _FifoReadIO(FdIO):
    """A FIFO read end: before any writer has opened it, read() returns 0 as if
    at end of file.  Linux's poll() reports neither data nor POLLHUP until a
    writer has come (and gone), so poll first and read only when it says so."""

    def __init__(self, rfd: int) -> None:
        super().__init__(rfd=rfd)
        self._poll = select.poll()
        self._poll.register(rfd, select.POLLIN)

    def recv_into(self, buf: memoryview, block: bool = False) -> int:
        if not self._poll.poll(None if block else 0):
            raise BlockingIOError
        return super().recv_into(buf)


class PipeReader(StreamEnd, StreamReceiver):
    """The read end of a one-way pipe: ``recv()``, ``read(n)``, iteration, ``fileno()``.

    A :class:`~interproc.ReceiveChannel`: it has no ``send`` or ``write``.
    """

    kind = "pipe-read"


class PipeWriter(StreamEnd, StreamSender):
    """The write end of a one-way pipe: ``send(msg)``, ``write(b)``, ``fileno()``.

    A :class:`~interproc.SendChannel`: it has no ``recv``, ``read`` or iteration.
    """

    kind = "pipe-write"


def pipe_from_fd(fd: int, end: str, *, codec: Any = "json",
                 max_message_size: int = DEFAULT_MAX_MESSAGE, name: str | None = None) -> PipeReader | PipeWriter:
    """Wrap an existing pipe/FIFO descriptor (taking ownership); ``end`` is 'read' or 'write'."""
    if end == "read":
        return PipeReader(FdIO(rfd=fd), name=name or f"pipe[fd {fd}, read]", codec=codec,
                          max_message_size=max_message_size)
    if end == "write":
        return PipeWriter(FdIO(wfd=fd), name=name or f"pipe[fd {fd}, write]", codec=codec,
                          max_message_size=max_message_size)
    raise ValueError(f"end must be 'read' or 'write', not {end!r}")


def pipe(*, codec: Any = "json", max_message_size: int = DEFAULT_MAX_MESSAGE) -> tuple[PipeReader, PipeWriter]:
    """A new anonymous one-way pipe: ``(reader, writer)``, not inherited by children."""
    rfd, wfd = os.pipe()
    return (
        pipe_from_fd(rfd, "read", codec=codec, max_message_size=max_message_size, name=f"pipe[{rfd}<-{wfd}].read"),
        pipe_from_fd(wfd, "write", codec=codec, max_message_size=max_message_size, name=f"pipe[{rfd}<-{wfd}].write"),
    )


def popen_with_pipe(args: Any, *, child: str = "read", env_var: str = ENV_VAR, codec: Any = "json",
                    **popen_kwargs: Any) -> tuple[subprocess.Popen, PipeReader | PipeWriter]:
    """Start ``args`` with one end of a new pipe; return ``(process, our end)``.

    ``child="read"``: the child reads what we write; ``child="write"``: the
    child writes to us.  The child finds its end with :func:`pipe_from_env`;
    the descriptor is passed with ``pass_fds`` and named in ``env_var``.
    """
    if child not in ("read", "write"):
        raise ValueError(f"child must be 'read' or 'write', not {child!r}")
    rfd, wfd = os.pipe()
    theirs, ours = (rfd, wfd) if child == "read" else (wfd, rfd)
    env = dict(popen_kwargs.pop("env", None) or os.environ)
    env[env_var] = f"{theirs}:{child}"
    pass_fds = tuple(popen_kwargs.pop("pass_fds", ())) + (theirs,)
    try:
        proc = subprocess.Popen(args, pass_fds=pass_fds, env=env, **popen_kwargs)
    except BaseException:
        os.close(rfd), os.close(wfd)
        raise
    os.close(theirs)  # only the child holds it now, so EOF/EPIPE follow the child's lifetime
    return proc, pipe_from_fd(ours, "write" if child == "read" else "read", codec=codec)


def pipe_from_env(env_var: str = ENV_VAR, *, codec: Any = "json",
                  max_message_size: int = DEFAULT_MAX_MESSAGE) -> PipeReader | PipeWriter:
    """In a child started by :func:`popen_with_pipe`: its end of the pipe."""
    value = os.environ.get(env_var)
    if not value:
        raise NotFound(f"no pipe was handed to this process (${env_var} is not set)")
    fd_text, _, end = value.partition(":")
    if not fd_text.isdigit() or end not in ("read", "write"):
        raise ValueError(f"${env_var}={value!r} is not 'FD:read' or 'FD:write'")
    fd = int(fd_text)
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            raise ValueError(f"${env_var} names fd {fd}, which is not a pipe")
    except OSError as exc:
        raise NotFound(f"${env_var} names fd {fd}, which is not open in this process") from exc
    return pipe_from_fd(fd, end, codec=codec, max_message_size=max_message_size)


class Fifo:
    """A POSIX FIFO (``mkfifo``) in the runtime directory, for shell tools.

    ``Fifo.create("log")`` makes ``<runtime dir>/fifo.log`` (0600); shell
    tools read and write ``fifo.path`` as a plain byte stream.  Opening
    for writing waits (up to ``timeout``) for a reader, as ``open(2)`` does,
    but interruptibly.
    """

    def __init__(self, path: str, scope: Scope = "user") -> None:
        self.path, self.scope = path, scope

    @classmethod
    def create(cls, name: str, *, scope: Scope = "user", mode: int | None = None) -> "Fifo":
        path = object_path("fifo", name, scope)
        file_mode = validate_scope(scope, mode)
        try:
            os.mkfifo(path, file_mode)
            os.chmod(path, file_mode)  # mkfifo applies the umask
        except FileExistsError:
            raise AlreadyExists(f"fifo {name!r} already exists at {path}") from None
        except OSError as exc:
            raise map_os_error(exc, f"fifo {name!r}") from exc
        return cls(path, scope)

    @classmethod
    def open(cls, name_or_path: str, *, scope: Scope = "user") -> "Fifo":
        path = name_or_path if "/" in name_or_path else object_path("fifo", name_or_path, scope)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise NotFound(f"no fifo at {path}") from None
        if not stat.S_ISFIFO(st.st_mode):
            raise ValueError(f"{path} is not a fifo")
        if "/" not in name_or_path:
            check_private(st, f"fifo {name_or_path!r}", scope)
        return cls(path, scope)

    def reader(self, *, codec: Any = "json") -> PipeReader:
        """Open the read end (does not wait for a writer)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise map_os_error(exc, f"fifo {self.path}") from exc
        return PipeReader(_FifoReadIO(fd), name=f"fifo {self.path} (read)", codec=codec)

    def writer(self, *, timeout: float | None = None, codec: Any = "json") -> PipeWriter:
        """Open the write end, waiting up to ``timeout`` for a reader to appear."""
        deadline = deadline_of(timeout)
        while True:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                return pipe_from_fd(fd, "write", codec=codec, name=f"fifo {self.path} (write)")  # type: ignore[return-value]
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                    raise map_os_error(exc, f"fifo {self.path}") from exc
            if deadline is not None and time.monotonic() >= deadline:
                raise Timeout(f"no reader opened fifo {self.path} in time")
            time.sleep(_OPEN_SLICE)

    def unlink(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def __repr__(self) -> str:
        return f"<Fifo {self.path}>"



# -- interproc ls / gc --------------------------------------------------------------
# A FIFO has no owner process of its own: it is "alive" while some process has
# it open, and "stale" (removable by ``interproc gc``) when nobody does.

def _fifo_holders(wanted: set[tuple[int, int]]) -> dict[tuple[int, int], int]:
    """(st_dev, st_ino) -> pid of a process that has that FIFO open."""
    holders: dict[tuple[int, int], int] = {}
    if not wanted:
        return holders
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue  # gone, or not ours to look at
        for fd in fds:
            try:
                st = os.stat(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in wanted:
                holders.setdefault(key, int(pid))
    return holders


def _list_fifos() -> list[_registry.ObjectInfo]:
    found = []
    dirs = [("user", runtime_dir("user"))] + ([("global", GLOBAL_DIR)] if os.path.isdir(GLOBAL_DIR) else [])
    for scope, directory in dirs:
        try:
            entries = os.listdir(directory)
        except OSError:
            continue
        for entry in entries:
            path = os.path.join(directory, entry)
            if not entry.startswith("fifo."):
                continue
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISFIFO(st.st_mode):
                found.append((scope, entry[len("fifo."):], path, st))
    holders = _fifo_holders({(st.st_dev, st.st_ino) for *_, st in found})
    infos = []
    for scope, name, path, st in found:
        pid = holders.get((st.st_dev, st.st_ino))
        infos.append(_registry.ObjectInfo(
            kind="fifo", name=name, scope=scope, owner_pid=pid, size=None, mode=stat.S_IMODE(st.st_mode),
            state=_registry.STATE_ALIVE if pid else _registry.STATE_STALE, path=path, details={"uid": st.st_uid}))
    return infos


_remove_fifo = remove_if_mine


def _collect_fifos() -> list[_registry.ObjectInfo]:
    return [info for info in _list_fifos() if info.state == _registry.STATE_STALE and _remove_fifo(info)]


_registry.register("fifo", _list_fifos, _collect_fifos, remove=_remove_fifo)
