"""``win32file``: CreateFile on pipes and mailslots, ReadFile/WriteFile
(overlapped too), mailslots, AllocateReadBuffer, GetOverlappedResult."""

from __future__ import annotations

from typing import Any

from . import _files
from ._core import (
    OVERLAPPED,
    as_bytes,
    close_handle,
    error,
    lookup,
    overlapped_complete,
    overlapped_start,
    raise_error,
    HANDLE,
)
from .win32con import (  # noqa: F401 - pywin32's win32file exports these
    CREATE_ALWAYS as CREATE_ALWAYS,
    CREATE_NEW as CREATE_NEW,
    FILE_ATTRIBUTE_NORMAL as FILE_ATTRIBUTE_NORMAL,
    FILE_FLAG_FIRST_PIPE_INSTANCE as FILE_FLAG_FIRST_PIPE_INSTANCE,
    FILE_FLAG_OVERLAPPED as FILE_FLAG_OVERLAPPED,
    FILE_FLAG_WRITE_THROUGH as FILE_FLAG_WRITE_THROUGH,
    FILE_SHARE_DELETE as FILE_SHARE_DELETE,
    FILE_SHARE_READ as FILE_SHARE_READ,
    FILE_SHARE_WRITE as FILE_SHARE_WRITE,
    GENERIC_READ as GENERIC_READ,
    GENERIC_WRITE as GENERIC_WRITE,
    INFINITE as INFINITE,
    MAILSLOT_NO_MESSAGE as MAILSLOT_NO_MESSAGE,
    MAILSLOT_WAIT_FOREVER as MAILSLOT_WAIT_FOREVER,
    OPEN_ALWAYS as OPEN_ALWAYS,
    OPEN_EXISTING as OPEN_EXISTING,
    TRUNCATE_EXISTING as TRUNCATE_EXISTING,
)
from .winerror import (
    ERROR_INVALID_PARAMETER,
    ERROR_IO_INCOMPLETE,
    ERROR_IO_PENDING,
    ERROR_MORE_DATA,
    ERROR_NOT_SUPPORTED,
)

_FILES = (_files.PipeEnd, _files.AnonEnd, _files.SlotServer, _files.SlotClient)


def CreateFile(fileName: str, desiredAccess: int, shareMode: int, attributes: Any,  # noqa: N802,N803
               CreationDisposition: int, flagsAndAttributes: int, hTemplateFile: Any) -> HANDLE:
    r"""Open ``\\.\pipe\NAME`` (ERROR_FILE_NOT_FOUND / ERROR_PIPE_BUSY) or
    ``\\.\mailslot\NAME``.  Ordinary files are not part of the face."""
    kind, name = _files.parse_path(fileName, "CreateFile")
    if kind == "mailslot":
        return HANDLE._new(_files.SlotClient(name, "CreateFile"))
    return HANDLE._new(_files.open_pipe(name, _files.BUSY_GRACE, "CreateFile"))


def AllocateReadBuffer(bufSize: int) -> memoryview:  # noqa: N802,N803
    """A writable buffer for ReadFile (pywin32's PyOVERLAPPEDReadBuffer)."""
    return memoryview(bytearray(bufSize))


def _size_and_buffer(buf: Any) -> tuple[int, memoryview | None]:
    if isinstance(buf, int):
        return buf, None
    view = memoryview(buf).cast("B")
    if view.readonly:
        raise TypeError("ReadFile: the buffer must be writable (use AllocateReadBuffer)")
    return len(view), view


def _do_read(obj: Any, size: int, funcname: str) -> tuple[int, bytes]:
    data, more = obj.read(size, funcname)
    if more and getattr(obj, "readmode_message", True):
        return ERROR_MORE_DATA, data
    return 0, data


def ReadFile(hFile: Any, buffer: Any, overlapped: OVERLAPPED | None = None) -> tuple[int, Any]:  # noqa: N802,N803
    """``(0, data)``, or ``(ERROR_MORE_DATA, part)`` when a message is longer than
    the buffer (the rest stays readable); overlapped: ``(ERROR_IO_PENDING, buffer)``."""
    obj = lookup(hFile, "ReadFile", _FILES)
    size, view = _size_and_buffer(buffer)
    if overlapped is None:
        status, data = _do_read(obj, size, "ReadFile")
        if view is None:
            return status, data
        view[: len(data)] = data
        return status, view[: len(data)]
    if view is None:
        view = memoryview(bytearray(size))

    def work() -> tuple[int, int, Any]:
        status, data = _do_read(obj, size, "ReadFile")
        view[: len(data)] = data
        return status, len(data), None

    overlapped_start(overlapped, work)
    return ERROR_IO_PENDING, view


def WriteFile(hFile: Any, data: Any, overlapped: OVERLAPPED | None = None) -> tuple[int, int]:  # noqa: N802,N803
    """``(0, bytes written)``; ERROR_NO_DATA when the reader has closed."""
    obj = lookup(hFile, "WriteFile", _FILES)
    payload = as_bytes(data, "WriteFile")
    if overlapped is None:
        return 0, obj.write(payload, "WriteFile")
    try:
        n = obj.write(payload, "WriteFile")
    except error as exc:
        overlapped_complete(overlapped, exc.winerror or 0, 0, exc)
        raise
    overlapped_complete(overlapped, 0, n)
    return 0, n


def GetOverlappedResult(hFile: Any, overlapped: OVERLAPPED, bWait: int) -> int:  # noqa: N802,N803
    """Bytes transferred; ERROR_IO_INCOMPLETE if still running and not ``bWait``;
    the operation's own error (e.g. ERROR_MORE_DATA, ERROR_BROKEN_PIPE) if it failed."""
    lookup(hFile, "GetOverlappedResult")
    if not overlapped._done.is_set():
        if not bWait:
            raise_error(ERROR_IO_INCOMPLETE, "GetOverlappedResult")
        overlapped._done.wait()
    if overlapped._error:
        raise_error(overlapped._error, "GetOverlappedResult")
    return overlapped.InternalHigh


def CancelIo(handle: Any) -> None:  # noqa: N802
    """Not emulated: the thread doing an overlapped operation cannot be stopped;
    close the handle instead (the operation then fails)."""
    lookup(handle, "CancelIo")


def FlushFileBuffers(hFile: Any) -> None:  # noqa: N802,N803
    """Nothing to flush: writes are in the socket when WriteFile returns."""
    lookup(hFile, "FlushFileBuffers")


def CloseHandle(handle: Any) -> None:  # noqa: N802
    close_handle(handle)


def CreateMailslot(Name: str, MaxMessageSize: int, ReadTimeout: int, SecurityAttributes: Any) -> HANDLE:  # noqa: N802,N803
    r"""``\\.\mailslot\NAME`` on interproc.mailslot; reads wait ``ReadTimeout`` ms."""
    kind, name = _files.parse_path(Name, "CreateMailslot")
    if kind != "mailslot":
        raise_error(ERROR_INVALID_PARAMETER, "CreateMailslot", f"{Name!r} is not a mailslot name")
    return HANDLE._new(_files.SlotServer(name, MaxMessageSize, ReadTimeout))


def GetMailslotInfo(Mailslot: Any) -> tuple[int, int, int, int]:  # noqa: N802,N803
    """``(maxMessageSize, nextSize, messageCount, readTimeout)``; nextSize is
    MAILSLOT_NO_MESSAGE when the slot is empty."""
    slot = lookup(Mailslot, "GetMailslotInfo", _files.SlotServer)
    pending = slot.slot.pending()
    nxt = pending.next_size if pending.count and pending.next_size is not None else MAILSLOT_NO_MESSAGE
    return slot.max_message_size, nxt, pending.count, slot.read_timeout


def SetMailslotInfo(Mailslot: Any, ReadTimeout: int) -> None:  # noqa: N802,N803
    lookup(Mailslot, "SetMailslotInfo", _files.SlotServer).read_timeout = ReadTimeout


def _unsupported(name: str) -> Any:
    def fn(*args: Any, **kw: Any) -> Any:
        raise_error(ERROR_NOT_SUPPORTED, name, "not part of the interproc pywin32 face (see docs/pywin32.md)")
    fn.__name__ = name
    return fn


CreateIoCompletionPort = _unsupported("CreateIoCompletionPort")
GetQueuedCompletionStatus = _unsupported("GetQueuedCompletionStatus")
PostQueuedCompletionStatus = _unsupported("PostQueuedCompletionStatus")
