"""``win32api``: handles, last error, sleep, process ids and (via win32gui)
SendMessage/PostMessage."""

from __future__ import annotations

import os
import time
from typing import Any

from ._core import close_handle, error, get_last_error, set_last_error
from .winerror import MESSAGES

__all__ = ["CloseHandle", "FormatMessage", "GetCurrentProcessId", "GetModuleHandle", "GetCurrentThreadId", "GetLastError",
           "GetTickCount", "PostMessage", "RegisterWindowMessage", "SendMessage", "SetLastError", "Sleep",
           "error"]


def CloseHandle(handle: Any) -> None:  # noqa: N802
    """Close the object; ``error(ERROR_INVALID_HANDLE)`` if already closed."""
    if hasattr(handle, "Close") and hasattr(handle, "_owns"):
        handle.Close()
    else:
        close_handle(handle, "CloseHandle")


def GetLastError() -> int:  # noqa: N802
    """The last error of this thread: ERROR_ALREADY_EXISTS after a Create* that opened an existing object."""
    return get_last_error()


def SetLastError(code: int) -> None:  # noqa: N802
    set_last_error(code)


def FormatMessage(*args: Any) -> str:  # noqa: N802
    """``FormatMessage(code)`` or pywin32's long form (the code is the 3rd argument)."""
    code = args[0] if len(args) == 1 else args[2]
    return MESSAGES.get(code, f"Win32 error {code}.") + "\r\n"


def Sleep(milliseconds: int, alertable: int = 0) -> int:  # noqa: N802
    time.sleep(milliseconds / 1000.0)
    return 0


def GetTickCount() -> int:  # noqa: N802
    return int(time.monotonic() * 1000) & 0xFFFFFFFF


def GetCurrentProcessId() -> int:  # noqa: N802
    return os.getpid()


def GetCurrentThreadId() -> int:  # noqa: N802
    import threading

    return threading.get_native_id()


def SendMessage(*args: Any) -> Any:  # noqa: N802
    from .win32gui import SendMessage as send

    return send(*args)


def PostMessage(*args: Any) -> Any:  # noqa: N802
    from .win32gui import PostMessage as post

    return post(*args)


def RegisterWindowMessage(name: str) -> int:  # noqa: N802
    from .win32gui import RegisterWindowMessage as register

    return register(name)


def GetModuleHandle(name: Any = None) -> int:  # noqa: N802
    """A stand-in HINSTANCE (CreateWindow ignores it on Linux)."""
    return 0x400000
