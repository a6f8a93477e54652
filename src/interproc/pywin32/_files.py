"""File-like objects behind the face's pipe and mailslot handles.

* ``ServerInstance``: one CreateNamedPipe instance.  All instances of a name
  in this process share one ``interproc.pipes.PipeServer`` (interproc lets one
  process serve a name); each instance holds at most one client channel.
* ``PipeEnd``: a connected channel (the client's CreateFile, or an instance).
* ``AnonEnd``: one end of CreatePipe.
* ``SlotServer`` / ``SlotClient``: CreateMailslot and CreateFile(\\\\.\\mailslot\\...).

Each has ``read(n, nowait) -> (data, more)`` raising ``pywintypes.error`` with
the Win32 code, ``write(data) -> n`` and ``close()``.
"""

from __future__ import annotations

import atexit
import threading
import time
from typing import Any

from .._errors import AlreadyExists, ChannelClosed, MessageTooLarge, NotFound, Timeout
from .._pipes._named import MAX_INSTANCES, PipeServer
from ..mailslot import Mailslot
from ..pipes import NamedPipe
from ._core import raise_error
from .winerror import (
    ERROR_ACCESS_DENIED,
    ERROR_BROKEN_PIPE,
    ERROR_FILE_NOT_FOUND,
    ERROR_INVALID_NAME,
    ERROR_INVALID_PARAMETER,
    ERROR_NO_DATA,
    ERROR_OPERATION_ABORTED,
    ERROR_PIPE_BUSY,
    ERROR_PIPE_LISTENING,
    ERROR_PIPE_NOT_CONNECTED,
    ERROR_SEM_TIMEOUT,
)

PIPE_TYPE_MESSAGE, PIPE_READMODE_MESSAGE, PIPE_NOWAIT = 0x4, 0x2, 0x1


def parse_path(path: str, funcname: str) -> tuple[str, str]:
    r"""``\\.\pipe\NAME`` -> ("pipe", NAME), ``\\.\mailslot\NAME`` -> ("mailslot", NAME).

    Only the local machine ('.') is reachable; a server name other than '.'
    or 'localhost' is ERROR_FILE_NOT_FOUND (no SMB on Linux)."""
    p = str(path).replace("/", "\\")
    if not p.startswith("\\\\"):
        raise_error(ERROR_INVALID_NAME, funcname, f"{path!r} is not \\\\.\\pipe\\NAME or \\\\.\\mailslot\\NAME")
    parts = p[2:].split("\\", 2)
    if len(parts) != 3 or parts[1].lower() not in ("pipe", "mailslot") or not parts[2]:
        raise_error(ERROR_INVALID_NAME, funcname, f"{path!r} is not \\\\.\\pipe\\NAME or \\\\.\\mailslot\\NAME")
    if parts[0] not in (".", "localhost", "127.0.0.1"):
        raise_error(ERROR_FILE_NOT_FOUND, funcname, f"remote server {parts[0]!r}: only '.' on Linux")
    return parts[1].lower(), parts[2].replace("\\", "-")


class PipeEnd:
    """A connected named-pipe channel with Win32 read/write results."""

    kind = "pipe"

    def __init__(self, ch: Any = None, *, readmode_message: bool = True, nowait: bool = False) -> None:
        self.ch = ch
        self.readmode_message = readmode_message
        self.nowait = nowait
        self._bytes = b""  # byte mode: what PeekNamedPipe looked at
        self._rlock = threading.Lock()

    def _channel(self, funcname: str) -> Any:
        if self.ch is None:
            raise_error(ERROR_PIPE_LISTENING, funcname)
        return self.ch

    def read(self, n: int, funcname: str = "ReadFile", timeout: float | None = None) -> tuple[bytes, bool]:
        ch = self._channel(funcname)
        wait = 0.0 if self.nowait else timeout
        with self._rlock:
            try:
                if not ch.framed and self._bytes:
                    data, self._bytes = self._bytes[:n], self._bytes[n:]
                    return data, False
                data, more = ch.read_part(n, timeout=wait)
            except Timeout:
                if self.nowait:
                    raise_error(ERROR_NO_DATA, funcname)
                raise_error(ERROR_SEM_TIMEOUT, funcname)
            except ChannelClosed:
                raise_error(ERROR_BROKEN_PIPE if self.ch is not None else ERROR_PIPE_NOT_CONNECTED, funcname)
        if not data and not more:
            raise_error(ERROR_BROKEN_PIPE, funcname)
        return data, more

    def peek(self, n: int) -> tuple[bytes, int, int]:
        ch = self._channel("PeekNamedPipe")
        with self._rlock:
            if ch.framed:
                if ch._rest is None:
                    try:
                        ch._rest = ch._recv_bytes(0.0)
                    except Timeout:
                        return b"", 0, 0
                    except ChannelClosed:
                        raise_error(ERROR_BROKEN_PIPE, "PeekNamedPipe")
                msg = ch._rest
                return msg[:n], len(msg), len(msg) - min(n, len(msg))
            if not self._bytes:
                try:
                    self._bytes = ch.read(65536, timeout=0.0)
                except Timeout:
                    return b"", 0, 0
                if not self._bytes:
                    raise_error(ERROR_BROKEN_PIPE, "PeekNamedPipe")
            return self._bytes[:n], len(self._bytes), 0

    def write(self, data: bytes, funcname: str = "WriteFile") -> int:
        ch = self._channel(funcname)
        try:
            return ch.write(data) if data else 0
        except (ChannelClosed, BrokenPipeError, ConnectionError):
            raise_error(ERROR_NO_DATA, funcname)

    def disconnect(self) -> None:
        ch, self.ch = self.ch, None
        self._bytes = b""
        if ch is not None:
            ch.close()

    def close(self) -> None:
        self.disconnect()


class _Shared:
    """The one PipeServer of a name in this process, and its instance count."""

    servers: dict[str, "_Shared"] = {}
    lock = threading.Lock()

    def __init__(self, name: str, mode: str, max_instances: int) -> None:
        self.server = PipeServer(name, mode=mode, max_instances=min(max_instances, MAX_INSTANCES))
        self.name, self.mode, self.max_instances, self.instances = name, mode, max_instances, 0
        self.linger: threading.Timer | None = None

    def release(self) -> None:
        """The last instance closed.  Keep the name LINGER seconds: a server that
        makes a fresh instance per client (the common pattern) then keeps the
        clients queued meanwhile, where Win32's instant re-create keeps them."""
        def expire() -> None:
            with _Shared.lock:
                if self.instances == 0 and _Shared.servers.get(self.name) is self:
                    _Shared.servers.pop(self.name, None)
                    self.server.close()

        self.linger = threading.Timer(LINGER, expire)
        self.linger.daemon = True
        self.linger.start()


#: Seconds a pipe name outlives its last instance (see _Shared.release).
LINGER = 0.5


@atexit.register
def _close_all() -> None:
    with _Shared.lock:
        for shared in list(_Shared.servers.values()):
            shared.server.close()
        _Shared.servers.clear()


class ServerInstance(PipeEnd):
    """One CreateNamedPipe instance: ConnectNamedPipe accepts one client into it."""

    def __init__(self, name: str, open_mode: int, pipe_mode: int, max_instances: int) -> None:
        super().__init__(None, readmode_message=bool(pipe_mode & PIPE_READMODE_MESSAGE),
                         nowait=bool(pipe_mode & PIPE_NOWAIT))
        if not 1 <= max_instances <= 255:
            raise_error(ERROR_INVALID_PARAMETER, "CreateNamedPipe", "nMaxInstances must be 1..255")
        mode = "message" if pipe_mode & PIPE_TYPE_MESSAGE else "byte"
        self.name, self.open_mode, self.pipe_mode = name, open_mode, pipe_mode
        with _Shared.lock:
            shared = _Shared.servers.get(name)
            if shared is None:
                try:
                    shared = _Shared(name, mode, max_instances)
                except AlreadyExists:
                    raise_error(ERROR_ACCESS_DENIED, "CreateNamedPipe",
                                f"pipe {name!r} is served by another process; on Linux all instances "
                                "of a pipe live in one process")
                _Shared.servers[name] = shared
            elif shared.instances >= shared.max_instances:
                raise_error(ERROR_PIPE_BUSY, "CreateNamedPipe", f"all {shared.max_instances} instances exist")
            shared.instances += 1
            if shared.linger is not None:
                shared.linger.cancel()
                shared.linger = None
        self.shared = shared
        self._closed = False
        self.default_timeout = 0

    def connect(self, timeout: float | None = None) -> None:
        """Wait for a client (ConnectNamedPipe); Timeout propagates.

        Waits in slices so that closing the handle ends the wait (Win32 cancels
        a pending ConnectNamedPipe with ERROR_OPERATION_ABORTED) instead of
        leaving a thread that would take the next client for a dead instance."""
        if self.ch is not None:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._closed:
                raise_error(ERROR_OPERATION_ABORTED, "ConnectNamedPipe", "the handle was closed")
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                ch = self.shared.server.accept(timeout=0.25 if left is None else min(left, 0.25))
            except Timeout:
                if left is not None and left <= 0.25:
                    raise
                continue
            except ChannelClosed:
                if self._closed:
                    raise_error(ERROR_OPERATION_ABORTED, "ConnectNamedPipe", "the handle was closed")
                raise
            if self._closed:
                ch.close()
                raise_error(ERROR_OPERATION_ABORTED, "ConnectNamedPipe", "the handle was closed")
            self.ch = ch
            return

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.disconnect()
        with _Shared.lock:
            self.shared.instances -= 1
            if self.shared.instances == 0:
                self.shared.release()


#: How long CreateFile waits for a server instance that is not in
#: ConnectNamedPipe before saying ERROR_PIPE_BUSY.  Win32 answers at once;
#: here an instance only greets a client from inside ConnectNamedPipe, so a
#: server that is between clients gets this much grace.
BUSY_GRACE = 1.0


def open_pipe(name: str, timeout: float | None, funcname: str) -> PipeEnd:
    try:
        ch = NamedPipe.connect(name, timeout=timeout)
    except NotFound:
        raise_error(ERROR_FILE_NOT_FOUND, funcname, f"no pipe named {name!r}")
    except Timeout:
        import os

        from .._pipes._named import _pipe_path

        if not os.path.exists(_pipe_path(name, "user")):
            raise_error(ERROR_FILE_NOT_FOUND, funcname, f"no pipe named {name!r}")
        raise_error(ERROR_PIPE_BUSY, funcname)
    except ChannelClosed:
        raise_error(ERROR_PIPE_BUSY, funcname, "the server closed the instance")
    return PipeEnd(ch, readmode_message=False)


class AnonEnd:
    """One end of an anonymous pipe (CreatePipe)."""

    kind = "anon"

    def __init__(self, end: Any) -> None:
        self.end = end
        self.nowait = False

    def read(self, n: int, funcname: str = "ReadFile", timeout: float | None = None) -> tuple[bytes, bool]:
        try:
            data = self.end.read(n, timeout=timeout)
        except (AttributeError, OSError):
            raise_error(ERROR_ACCESS_DENIED, funcname, "this is the write end")
        except ChannelClosed:
            raise_error(ERROR_BROKEN_PIPE, funcname)
        if not data:
            raise_error(ERROR_BROKEN_PIPE, funcname)
        return data, False

    def write(self, data: bytes, funcname: str = "WriteFile") -> int:
        try:
            return int(self.end.write(data))
        except (AttributeError,):
            raise_error(ERROR_ACCESS_DENIED, funcname, "this is the read end")
        except (ChannelClosed, BrokenPipeError, ConnectionError):
            raise_error(ERROR_NO_DATA, funcname)

    def close(self) -> None:
        self.end.close()


class SlotServer:
    """CreateMailslot: reads wait the slot's read timeout (ms, MAILSLOT_WAIT_FOREVER)."""

    kind = "mailslot"

    def __init__(self, name: str, max_message_size: int, read_timeout: int) -> None:
        from .._mailslot import DEFAULT_MAX_MESSAGE_SIZE

        try:
            self.slot = Mailslot.create(name, max_message_size or DEFAULT_MAX_MESSAGE_SIZE)
        except AlreadyExists:
            from .winerror import ERROR_ALREADY_EXISTS

            raise_error(ERROR_ALREADY_EXISTS, "CreateMailslot", f"mailslot {name!r} exists")
        self.max_message_size = max_message_size
        self.read_timeout = read_timeout

    def read(self, n: int, funcname: str = "ReadFile", timeout: float | None = None) -> tuple[bytes, bool]:
        from ._core import milliseconds

        pending = self.slot.pending()
        if pending.count and pending.next_size is not None and pending.next_size > n:
            from .winerror import ERROR_INSUFFICIENT_BUFFER

            raise_error(ERROR_INSUFFICIENT_BUFFER, funcname, f"the next message is {pending.next_size} bytes")
        try:
            return self.slot.read(timeout=milliseconds(self.read_timeout)), False
        except Timeout:
            raise_error(ERROR_SEM_TIMEOUT, funcname)

    def write(self, data: bytes, funcname: str = "WriteFile") -> int:
        raise_error(ERROR_ACCESS_DENIED, funcname, "a mailslot server handle is read-only")

    def close(self) -> None:
        self.slot.close()


class SlotClient:
    kind = "mailslot-client"

    def __init__(self, name: str, funcname: str) -> None:
        try:
            self.writer = Mailslot.open(name)
        except NotFound:
            raise_error(ERROR_FILE_NOT_FOUND, funcname, f"no mailslot named {name!r}")
        self.name = name

    def read(self, n: int, funcname: str = "ReadFile", timeout: float | None = None) -> tuple[bytes, bool]:
        raise_error(ERROR_ACCESS_DENIED, funcname, "a mailslot client handle is write-only")

    def write(self, data: bytes, funcname: str = "WriteFile") -> int:
        try:
            self.writer.send(data)
        except MessageTooLarge:
            raise_error(ERROR_INVALID_PARAMETER, funcname, "larger than the slot's maximum message size")
        except (NotFound, ChannelClosed):
            raise_error(ERROR_FILE_NOT_FOUND, funcname, "the mailslot server is gone")
        return len(data)

    def close(self) -> None:
        self.writer.close()
