"""Named pipes: the Win32 model on AF_UNIX stream sockets.

``NamedPipe.serve(name)`` listens on ``<runtime dir>/pipe.<name>``;
``NamedPipe.connect(name)`` reaches it.  Why a stream socket rather than
SOCK_SEQPACKET: a SEQPACKET message must fit the socket send buffer
(``net.core.wmem_max``, a few hundred KiB), while message mode here
promises messages up to ``max_message_size`` (256 MiB by default).
Message mode is therefore length-prefixed frames (:mod:`interproc._framing`)
and byte mode is the bare stream.

Win32 behaviour kept:

* **first instance** (FILE_FLAG_FIRST_PIPE_INSTANCE): the server holds an
  abstract-namespace socket named after the pipe's path for its lifetime, so
  a second server of the same name fails with ``AlreadyExists`` and cannot
  replace (squat) the live one; a socket file left by a dead server is
  replaced.  ``interproc ls`` reads the same token to say alive or stale.
* **instances** (nMaxInstances): at most ``max_instances`` clients are
  connected at once.  ``accept()`` waits for a free instance; a client is
  only greeted when it gets one, so ``connect(timeout=)`` waits for a free
  instance like WaitNamedPipe.
* **client identity**: ``peer.peer_credentials`` is the client's pid, uid
  and gid (SO_PEERCRED).  A user-scope pipe refuses other uids even if they
  reach the socket; a global one takes ``allowed_uids=``.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import os
import socket
import stat
import threading
import time
from typing import Any, Iterable, Iterator

from .. import _registry
from .._accept import HandshakePool, PendingHandshake
from .._errors import AlreadyExists, ChannelClosed, PermissionDenied, Timeout, map_os_error
from .._framing import DEFAULT_MAX_MESSAGE
from .._lifecycle import log
from .._naming import Scope, global_dir, runtime_dir, validate_name, validate_scope
from .._platform import PeerCredentials, peer_credentials, socket_owner, unix_listeners
from .._sockets._channel import ListeningSocket, bind_unix, connect_unix_socket, finish_connect
from .._sockets._core import HANDSHAKE_TIMEOUT
from .._stream._channel import SockIO, StreamChannel, deadline_of
from ._core import KIND, MAX_INSTANCES, MODES, client_setup, connect_options, remove_if_mine, server_setup
from ._core import options as _options, pipe_path as _pipe_path, token_name as _token_name


class PipeChannel(StreamChannel):
    """One connected instance of a named pipe (either side).

    In message mode ``read``/``write`` are Win32's ReadFile/WriteFile on a
    message pipe: ``write(b)`` sends one message, ``read(n)`` returns up to
    ``n`` bytes of the current message and keeps the rest for the next
    ``read`` (or ``recv``); :meth:`read_part` also says whether more of the
    message remains (ERROR_MORE_DATA).
    """

    kind = "pipe"
    peer_credentials: PeerCredentials | None = None
    mode: str = "message"
    #: What a short read left of the current message (message mode).
    _rest: bytes | None = None

    def read_part(self, n: int = -1, *, timeout: float | None = None) -> tuple[bytes, bool]:
        """``(data, more)``: up to ``n`` bytes of the current message, and
        whether more of it remains (Win32 ReadFile's ERROR_MORE_DATA).

        The next ``read_part``/``read``/``recv`` (from any thread) continues
        the same message; it never runs into the next one.  ``(b"", False)``
        once the peer has closed.  In byte mode ``more`` is always False.
        """
        if not self.framed:
            return self.read(n, timeout=timeout), False
        if self._closed:
            raise ChannelClosed(f"read on closed {self.name}")
        msg, self._rest = self._rest, None
        if msg is None:
            try:
                msg = self._recv_bytes(timeout)
            except ChannelClosed:
                if self._closed:
                    raise
                return b"", False
        if n < 0 or len(msg) <= n:
            return msg, False
        self._rest = msg[n:]
        return msg[:n], True

    def read(self, n: int = -1, *, timeout: float | None = None) -> bytes:
        """Byte mode: up to ``n`` bytes of the stream.  Message mode: up to
        ``n`` bytes of the current message (see :meth:`read_part`)."""
        if not self.framed:
            return super().read(n, timeout=timeout)
        return self.read_part(n, timeout=timeout)[0]

    def write(self, data: Any, *, timeout: float | None = None) -> int:
        """Byte mode: write to the stream.  Message mode: send ``data`` as one
        message (all or nothing).  Returns the number of bytes."""
        if not self.framed:
            return super().write(data, timeout=timeout)
        self.send(data, timeout=timeout)
        return memoryview(data).nbytes

    def _recv_bytes(self, timeout: float | None) -> bytes:
        rest, self._rest = self._rest, None
        if rest is not None:
            return rest  # the end of a message a short read() began
        return super()._recv_bytes(timeout)


class _Instances:
    """Counts connected instances; ``accept()`` waits here when all are taken."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self.cond = threading.Condition()

    def take(self, deadline: float | None, what: str) -> None:
        with self.cond:
            while self.count >= self.limit:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise Timeout(f"{what}: all {self.limit} instances are in use")
                self.cond.wait(left)
            self.count += 1

    def free(self) -> bool:
        return self.count < self.limit

    def wait_free(self, deadline: float | None, what: str) -> None:
        """Wait until an instance is free (without taking it)."""
        with self.cond:
            while self.count >= self.limit:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise Timeout(f"{what}: all {self.limit} instances are in use")
                self.cond.wait(left)

    def give_back(self) -> None:
        with self.cond:
            self.count -= 1
            self.cond.notify()


class _AcceptLine:
    """Threads blocked in ``accept()`` queue here, so the one that has waited
    longest gets the next client, as Win32 hands a client to the instance
    that has waited longest in ConnectNamedPipe.  Only the thread at the head
    of the line accepts (``with line.turn(deadline, what): ...``); the others
    wait for their turn."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._line: collections.deque[object] = collections.deque()

    def __len__(self) -> int:
        return len(self._line)

    @contextlib.contextmanager
    def turn(self, deadline: float | None, what: str) -> Iterator[None]:
        me = object()
        with self._cond:
            self._line.append(me)
            try:
                while self._line[0] is not me:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise Timeout(f"accept on {what} timed out")
                    self._cond.wait(left)
            except BaseException:
                self._leave(me)
                raise
        try:
            yield
        finally:
            with self._cond:
                self._leave(me)

    def _leave(self, me: object) -> None:
        self._line.remove(me)
        self._cond.notify_all()


class PipeServer(ListeningSocket):
    """The server end of a named pipe: ``accept()`` gives one channel per client."""

    def __init__(self, name: str, *, mode: str = "message", max_instances: int = MAX_INSTANCES,
                 scope: Scope = "user", file_mode: int | None = None, allowed_uids: Iterable[int] | None = None,
                 codec: Any = "json", max_message_size: int = DEFAULT_MAX_MESSAGE,
                 handshake_timeout: float = HANDSHAKE_TIMEOUT) -> None:
        validate_name(name, "pipe name")
        if mode not in MODES:
            raise ValueError(f"mode must be 'message' or 'byte', not {mode!r}")
        if not isinstance(max_instances, int) or not 1 <= max_instances <= 65535:
            raise ValueError(f"max_instances must be an int in 1..65535, not {max_instances!r}")
        perms = validate_scope(scope, file_mode)
        self.name, self.mode, self.scope = name, mode, scope
        self.max_instances = max_instances
        self.allowed_uids = frozenset(allowed_uids) if allowed_uids is not None else None
        self.codec, self.max_message_size = codec, max_message_size
        self.handshake_timeout = handshake_timeout
        self.address = f"pipe://{name}"
        self.label = f"pipe server {name!r}"
        self.path = _pipe_path(name, scope)
        self._instances = _Instances(max_instances)
        self._may_accept = self._instances.free  # a client is greeted only with a free instance
        self._line = _AcceptLine()
        self._owner = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._owner.bind("\0" + _token_name(self.path, scope))
        except OSError as exc:
            self._owner.close()
            self._sock = self._owner = None
            if exc.errno == errno.EADDRINUSE:
                raise AlreadyExists(f"pipe {name!r} is already being served by another process") from None
            raise map_os_error(exc, f"pipe {name!r}") from exc
        try:
            if os.path.lexists(self.path):
                os.unlink(self.path)  # we hold the owner token, so whatever is there is stale
            self._sock = bind_unix(self.path, perms)
        except BaseException:
            self._owner.close()
            self._sock = self._owner = None
            raise
        self._sock.setblocking(False)
        self._ino = os.stat(self.path).st_ino
        self._pid = os.getpid()  # only this process removes the name (not a forked child)
        self._pool = HandshakePool(f"pipe {name!r}", self._start, self._finish)

    def __repr__(self) -> str:
        return f"<PipeServer {self.name!r} {self.mode} {self._instances.count}/{self.max_instances}>"

    @property
    def instances(self) -> int:
        """Clients connected right now."""
        return self._instances.count

    def accept(self, *, timeout: float | None = None) -> PipeChannel:
        """The next client, once an instance is free (``Timeout`` otherwise).

        A client of another uid (user scope, or not in ``allowed_uids``) gets
        ``PermissionDenied`` and so does this call; a client that speaks
        garbage raises ``ProtocolError``.  The server keeps serving either way.
        """
        deadline = deadline_of(timeout)
        what = f"pipe {self.name!r}"
        # Accepting threads queue (the longest waiter gets the next client, as
        # in Win32); handshakes run side by side in the pool, and a client is
        # greeted only once it has an instance: each handshake in progress
        # holds one, handed to its channel or given back if dropped.
        with self._line.turn(deadline, what):
            ch = self._pool.accept(lambda: self._sock, deadline, self._may_accept,
                                   lambda d: self._instances.wait_free(d, f"accept on {what}"))
        log.debug("pipe %r: accepted pid %s (uid %s), %d/%d instances", self.name,
                  ch.peer_credentials.pid, ch.peer_credentials.uid, self._instances.count, self.max_instances)
        return ch

    def _start(self, conn: socket.socket, peer: Any = None) -> PendingHandshake:
        setup = server_setup(self)
        io = SockIO(conn)
        try:
            creds = peer_credentials(conn)
        except OSError as exc:
            io.close()
            raise ChannelClosed(f"pipe {self.name!r}: a client went away at once ({exc})") from None
        try:
            setup.screen(creds, lambda frame: io.send([frame]))
        except BaseException:
            io.close()
            raise
        self._instances.take(None, "")  # free (checked before accepting), so this does not wait
        p = PendingHandshake(io, setup.handshake, time.monotonic() + self.handshake_timeout,
                             f"client pid {creds.pid} of pipe {self.name!r}", info=(setup, creds))
        p.close = lambda: (io.close(), self._instances.give_back())  # type: ignore[method-assign]
        return p

    def _channel(self, p: PendingHandshake, out: Any) -> PipeChannel:
        return PipeChannel(p.io, name=out.name, framed=out.framed, codec=self.codec,
                           max_message_size=self.max_message_size, trusted=out.trusted, decoder=p.decoder,
                           on_close=self._instances.give_back)

    def close(self) -> None:
        """Stop listening and remove the name (connected instances stay open)."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        try:
            if os.getpid() == self._pid and os.stat(self.path).st_ino == self._ino:
                os.unlink(self.path)
        except OSError:
            pass
        sock.close()
        self._pool.close()
        self._owner.close()


class NamedPipe:
    """Named pipes: ``NamedPipe.serve(name)`` and ``NamedPipe.connect(name)``."""

    @staticmethod
    def serve(name: str, *, mode: str = "message", max_instances: int = MAX_INSTANCES, scope: Scope = "user",
              file_mode: int | None = None, allowed_uids: Iterable[int] | None = None, codec: Any = "json",
              max_message_size: int = DEFAULT_MAX_MESSAGE,
              handshake_timeout: float = HANDSHAKE_TIMEOUT) -> PipeServer:
        """Create the pipe ``name`` (``AlreadyExists`` if a live server has it)."""
        return PipeServer(name, mode=mode, max_instances=max_instances, scope=scope, file_mode=file_mode,
                          allowed_uids=allowed_uids, codec=codec, max_message_size=max_message_size,
                          handshake_timeout=handshake_timeout)

    @staticmethod
    def connect(name: str, *, timeout: float | None = None, scope: Scope = "user", codec: Any = "json",
                max_message_size: int = DEFAULT_MAX_MESSAGE, server_uid: int | None = None) -> PipeChannel:
        """Connect to pipe ``name``.

        ``NotFound`` at once when no server has it, unless ``timeout=`` is
        given: then wait that long for a server and for a free instance.
        With ``timeout=None`` and a live server whose instances are all
        busy, wait until one is free (WaitNamedPipe with NMPWAIT_WAIT_FOREVER).

        ``server_uid=`` requires the server process to run as that uid
        (SO_PEERCRED), else ``PermissionDenied``.  A user-scope pipe always
        requires your own uid; a global name is first come, first served,
        so pass ``server_uid=`` whenever it matters who answers.
        """
        validate_name(name, "pipe name")
        path = _pipe_path(name, scope)
        what = f"pipe {name!r}"
        deadline = deadline_of(timeout)
        setup = client_setup(name, scope, server_uid)  # checks server_uid first
        sock = connect_unix_socket(path, deadline, timeout is not None, what)
        try:
            creds = peer_credentials(sock)
            setup.check_peer(creds)
        except BaseException:
            sock.close()
            raise
        try:
            return finish_connect(sock, setup, deadline, cls=PipeChannel, creds=creds,
                                  name=f"pipe {name!r} -> pid {creds.pid}", codec=codec,
                                  max_message_size=max_message_size)
        except Timeout:
            raise Timeout(f"{what}: no free instance within {timeout}s") from None

    @staticmethod
    def list() -> list[_registry.ObjectInfo]:
        """Named pipes in the user and global runtime directories."""
        return list(_list_pipes())


# -- addresses ------------------------------------------------------------------

def connect_address(addr: Any, *, timeout: float | None = None, **kw: Any) -> PipeChannel:
    return NamedPipe.connect(addr.name, timeout=timeout, **connect_options(addr, kw))


def listen_address(addr: Any, **kw: Any) -> PipeServer:
    return NamedPipe.serve(addr.name, **_options(addr, kw))


# -- interproc ls / gc ------------------------------------------------------------

def _list_pipes() -> Iterable[_registry.ObjectInfo]:
    bound = unix_listeners(listening_only=False)
    dirs: list[tuple[str, str]] = [("user", runtime_dir("user"))]
    if os.path.isdir(global_dir()):
        dirs.append(("global", global_dir()))
    for scope, directory in dirs:
        try:
            entries = os.listdir(directory)
        except OSError:
            continue
        for entry in entries:
            if not entry.startswith(KIND + ".") or entry.endswith(".tmp"):
                continue
            path = os.path.join(directory, entry)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if not stat.S_ISSOCK(st.st_mode):
                continue
            try:
                inode = bound.get("@" + _token_name(path, scope))
            except PermissionDenied:
                inode = None
            yield _registry.ObjectInfo(
                kind=KIND, name=entry[len(KIND) + 1 :], scope=scope,
                owner_pid=socket_owner(inode) if inode else None, size=None,
                mode=stat.S_IMODE(st.st_mode), state=_registry.STATE_ALIVE if inode else _registry.STATE_STALE,
                path=path, details={"uid": st.st_uid},
            )


def _collect_pipes() -> Iterable[_registry.ObjectInfo]:
    return [info for info in _list_pipes() if info.state == _registry.STATE_STALE and _remove_pipe(info)]


_remove_pipe = remove_if_mine


_registry.register(KIND, _list_pipes, _collect_pipes, remove=_remove_pipe)
