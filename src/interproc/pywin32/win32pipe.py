"""``win32pipe``: named pipes on interproc.pipes (the same names, user scope)
and anonymous pipes."""

from __future__ import annotations

import os
from typing import Any

from .._errors import Timeout
from .._pipes._named import _pipe_path
from ..pipes import pipe as _anon_pipe
from . import _files
from ._core import (
    HANDLE,
    OVERLAPPED,
    as_bytes,
    lookup,
    milliseconds,
    overlapped_complete,
    overlapped_start,
    raise_error,
)
from .win32con import (  # noqa: F401 - pywin32's win32pipe exports these
    NMPWAIT_NOWAIT as NMPWAIT_NOWAIT,
    NMPWAIT_USE_DEFAULT_WAIT as NMPWAIT_USE_DEFAULT_WAIT,
    NMPWAIT_WAIT_FOREVER as NMPWAIT_WAIT_FOREVER,
    PIPE_ACCEPT_REMOTE_CLIENTS as PIPE_ACCEPT_REMOTE_CLIENTS,
    PIPE_ACCESS_DUPLEX as PIPE_ACCESS_DUPLEX,
    PIPE_ACCESS_INBOUND as PIPE_ACCESS_INBOUND,
    PIPE_ACCESS_OUTBOUND as PIPE_ACCESS_OUTBOUND,
    PIPE_NOWAIT as PIPE_NOWAIT,
    PIPE_READMODE_BYTE as PIPE_READMODE_BYTE,
    PIPE_READMODE_MESSAGE as PIPE_READMODE_MESSAGE,
    PIPE_REJECT_REMOTE_CLIENTS as PIPE_REJECT_REMOTE_CLIENTS,
    PIPE_TYPE_BYTE as PIPE_TYPE_BYTE,
    PIPE_TYPE_MESSAGE as PIPE_TYPE_MESSAGE,
    PIPE_UNLIMITED_INSTANCES as PIPE_UNLIMITED_INSTANCES,
    PIPE_WAIT as PIPE_WAIT,
)
from .win32file import GetOverlappedResult as GetOverlappedResult  # win32pipe has it too
from .winerror import (
    ERROR_FILE_NOT_FOUND,
    ERROR_IO_PENDING,
    ERROR_PIPE_CONNECTED,
    ERROR_PIPE_LISTENING,
)


def CreateNamedPipe(pipeName: str, openMode: int, pipeMode: int, nMaxInstances: int,  # noqa: N802,N803
                    nOutBufferSize: int, nInBufferSize: int, nDefaultTimeOut: int, sa: Any) -> HANDLE:
    r"""One instance of ``\\.\pipe\NAME``: message or byte type, max instances
    (PIPE_UNLIMITED_INSTANCES = 255), PIPE_NOWAIT.  Buffer sizes are advisory."""
    kind, name = _files.parse_path(pipeName, "CreateNamedPipe")
    if kind != "pipe":
        raise_error(87, "CreateNamedPipe", f"{pipeName!r} is not a pipe name")
    inst = _files.ServerInstance(name, openMode, pipeMode, nMaxInstances)
    inst.default_timeout = nDefaultTimeOut
    return HANDLE._new(inst)


def ConnectNamedPipe(hPipe: Any, overlapped: OVERLAPPED | None = None) -> int:  # noqa: N802,N803
    """Wait for a client: 0, or ERROR_PIPE_CONNECTED (one is already there),
    or with ``overlapped`` ERROR_IO_PENDING (its hEvent is set on connection)."""
    inst = lookup(hPipe, "ConnectNamedPipe", _files.ServerInstance)
    if inst.ch is not None:
        if overlapped is not None:
            overlapped_complete(overlapped, 0, 0)
        return ERROR_PIPE_CONNECTED
    if inst.nowait and overlapped is None:  # PIPE_NOWAIT: a client now, or ERROR_PIPE_LISTENING
        try:
            inst.connect(0.0)
        except Timeout:
            raise_error(ERROR_PIPE_LISTENING, "ConnectNamedPipe")
        return 0
    if overlapped is None:
        inst.connect(None)
        return 0

    def work() -> tuple[int, int, Any]:
        inst.connect(None)
        return 0, 0, None

    overlapped_start(overlapped, work)
    return ERROR_IO_PENDING


def DisconnectNamedPipe(hPipe: Any) -> None:  # noqa: N802,N803
    lookup(hPipe, "DisconnectNamedPipe", _files.ServerInstance).disconnect()


def _wait_ms(ms: int, default: int = 50) -> float | None:
    if ms in (NMPWAIT_WAIT_FOREVER, -1):
        return None
    if ms == NMPWAIT_USE_DEFAULT_WAIT:
        return default / 1000.0
    if ms == NMPWAIT_NOWAIT:
        return 0.0
    return milliseconds(ms)


def WaitNamedPipe(pipeName: str, timeout: int) -> None:  # noqa: N802,N803
    """Return once the pipe exists; ERROR_FILE_NOT_FOUND at once when no server
    has it, ERROR_SEM_TIMEOUT if it does not appear in time.  Whether an instance
    is free is only known by connecting (CreateFile/CallNamedPipe)."""
    _, name = _files.parse_path(pipeName, "WaitNamedPipe")
    path = _pipe_path(name, "user")
    if not os.path.exists(path):
        raise_error(ERROR_FILE_NOT_FOUND, "WaitNamedPipe", f"no pipe named {name!r}")


def CallNamedPipe(pipeName: str, data: Any, bufSize: int, timeOut: int) -> bytes:  # noqa: N802,N803
    """Connect (waiting up to ``timeOut`` ms for an instance), write one message,
    read one reply of at most ``bufSize`` bytes (the rest is discarded), close."""
    _, name = _files.parse_path(pipeName, "CallNamedPipe")
    payload = as_bytes(data, "CallNamedPipe")
    wait = _wait_ms(timeOut)
    if not os.path.exists(_pipe_path(name, "user")):
        raise_error(ERROR_FILE_NOT_FOUND, "CallNamedPipe", f"no pipe named {name!r}")
    end = _files.open_pipe(name, wait if wait is not None else None, "CallNamedPipe")
    try:
        end.write(payload, "CallNamedPipe")
        reply, _more = end.read(bufSize, "CallNamedPipe")
        return reply
    finally:
        end.close()


def TransactNamedPipe(pipeName: Any, writeData: Any, buffer: Any,  # noqa: N802,N803
                      overlapped: OVERLAPPED | None = None) -> tuple[int, Any]:
    """Write one message and read the reply on a connected handle:
    ``(0, data)`` or ``(ERROR_MORE_DATA, part)``."""
    from .win32file import ReadFile

    end = lookup(pipeName, "TransactNamedPipe", _files.PipeEnd)
    end.write(as_bytes(writeData, "TransactNamedPipe"), "TransactNamedPipe")
    return ReadFile(pipeName, buffer, overlapped)


def PeekNamedPipe(hPipe: Any, size: int) -> tuple[bytes, int, int]:  # noqa: N802,N803
    """``(data, bytesAvailable, bytesLeftThisMessage)`` without consuming anything."""
    end = lookup(hPipe, "PeekNamedPipe", _files.PipeEnd)
    data, avail, left = end.peek(size)
    return data, avail, left


def SetNamedPipeHandleState(hPipe: Any, Mode: int | None, MaxCollectionCount: int | None,  # noqa: N802,N803
                            CollectDataTimeout: int | None) -> None:
    """PIPE_READMODE_MESSAGE/BYTE and PIPE_WAIT/NOWAIT; the collection settings
    (remote byte pipes only) are accepted and ignored."""
    end = lookup(hPipe, "SetNamedPipeHandleState", _files.PipeEnd)
    if Mode is not None:
        end.readmode_message = bool(Mode & PIPE_READMODE_MESSAGE)
        end.nowait = bool(Mode & PIPE_NOWAIT)


def GetNamedPipeHandleState(hPipe: Any, bGetCollectionData: int = 0) -> tuple[int, int, Any, Any, str]:  # noqa: N802,N803
    end = lookup(hPipe, "GetNamedPipeHandleState", _files.PipeEnd)
    mode = (PIPE_READMODE_MESSAGE if end.readmode_message else 0) | (PIPE_NOWAIT if end.nowait else 0)
    return mode, 1, None, None, ""


def GetNamedPipeClientProcessId(hPipe: Any) -> int:  # noqa: N802,N803
    end = lookup(hPipe, "GetNamedPipeClientProcessId", _files.ServerInstance)
    return int(end._channel("GetNamedPipeClientProcessId").peer_credentials.pid)


def GetNamedPipeServerProcessId(hPipe: Any) -> int:  # noqa: N802,N803
    end = lookup(hPipe, "GetNamedPipeServerProcessId", _files.PipeEnd)
    if isinstance(end, _files.ServerInstance):
        return os.getpid()
    return int(end._channel("GetNamedPipeServerProcessId").peer_credentials.pid)


def CreatePipe(sa: Any, nSize: int) -> tuple[HANDLE, HANDLE]:  # noqa: N802,N803
    """An anonymous pipe: ``(hReadPipe, hWritePipe)``."""
    r, w = _anon_pipe()
    return HANDLE._new(_files.AnonEnd(r)), HANDLE._new(_files.AnonEnd(w))
