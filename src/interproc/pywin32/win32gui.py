"""``win32gui``: message-only windows on interproc.messages.

A window is an interproc.messages.Window named after its window name (or its
class name when it has none).  ``CreateWindow`` with a registered class whose
``lpfnWndProc`` is a function or a ``{msg: function}`` dict gives a window
whose procedure is called as ``wndproc(hwnd, msg, wparam, lparam)`` by
``PumpMessages``/``PumpWaitingMessages``.  WM_COPYDATA arrives as on Win32:
``lparam`` is the address of a COPYDATASTRUCT (dwData, cbData, lpData) in this
process, valid while the procedure runs.  HWNDs are numbers local to the
process, like a handle; ``FindWindow`` maps a name to one.  No GDI: nothing
is drawn, ``style``/position arguments are accepted and ignored.
"""

from __future__ import annotations

import ctypes
import itertools
import struct
import threading
from typing import Any

from .. import messages as _msgs
from .._errors import NotFound, PermissionDenied, RemoteError, Timeout
from ._core import error, raise_error  # noqa: F401 - error: win32gui.error
from .win32con import HWND_BROADCAST as HWND_BROADCAST, SMTO_ABORTIFHUNG as SMTO_ABORTIFHUNG, WM_COPYDATA as WM_COPYDATA
from .winerror import ERROR_INVALID_WINDOW_HANDLE, ERROR_TIMEOUT, ERROR_GEN_FAILURE


_hwnds = itertools.count(0x10010, 2)
_names: dict[int, str] = {}  # hwnd -> window name (ours and found ones)
_by_name: dict[str, int] = {}
_windows: dict[int, _msgs.Window] = {}  # windows this process created
_classes: dict[str, "WNDCLASS"] = {}
_lock = threading.Lock()


class COPYDATASTRUCT(ctypes.Structure):
    """Win32's layout on a 64-bit machine: ULONG_PTR, DWORD (+4 padding), PVOID."""

    _fields_ = [("dwData", ctypes.c_size_t), ("cbData", ctypes.c_uint32), ("lpData", ctypes.c_void_p)]


class WNDCLASS:
    """``win32gui.WNDCLASS()``: set ``lpszClassName`` and ``lpfnWndProc``."""

    def __init__(self) -> None:
        self.lpszClassName = ""
        self.lpfnWndProc: Any = None
        self.style = 0
        self.hInstance = 0
        self.hCursor = self.hIcon = self.hbrBackground = 0
        self.lpszMenuName = ""
        self.cbWndExtra = 0


def _hwnd_of(name: str) -> int:
    with _lock:
        if name not in _by_name:
            h = next(_hwnds)
            _by_name[name], _names[h] = h, name
        return _by_name[name]


def RegisterClass(wc: WNDCLASS) -> int:  # noqa: N802
    """Register a window class; returns its atom."""
    if not wc.lpszClassName:
        raise_error(87, "RegisterClass", "lpszClassName is empty")
    _classes[wc.lpszClassName] = wc
    return _msgs.register_message("WNDCLASS:" + wc.lpszClassName)


def UnregisterClass(atom: Any, hinst: Any = None) -> None:  # noqa: N802
    for name in [n for n in _classes if n == atom or _msgs.register_message("WNDCLASS:" + n) == atom]:
        del _classes[name]


def GetModuleHandle(name: Any = None) -> int:  # noqa: N802
    return 0x400000


def _class(cls: Any) -> WNDCLASS:
    for name, wc in _classes.items():
        if cls == name or cls == _msgs.register_message("WNDCLASS:" + name):
            return wc
    raise_error(1407, "CreateWindow", f"window class {cls!r} is not registered")  # ERROR_CANNOT_FIND_WND_CLASS


class _Procedure(dict):  # type: ignore[type-arg]
    """Every message goes to the window procedure (DefWindowProc answers 0)."""

    def __init__(self, hwnd: int, wndproc: Any) -> None:
        super().__init__()
        self.hwnd, self.wndproc = hwnd, wndproc

    def get(self, msg: int, default: Any = None) -> Any:
        proc = self.wndproc.get(msg) if isinstance(self.wndproc, dict) else self.wndproc
        if proc is None:
            return None
        hwnd = self.hwnd

        def call(m: _msgs.Message) -> Any:
            if m.msg == WM_COPYDATA and m.data is not None:
                data = bytes(m.data)
                buf = ctypes.create_string_buffer(data, len(data) or 1)
                cds = COPYDATASTRUCT(m.tag, len(data), ctypes.cast(buf, ctypes.c_void_p))
                result = proc(hwnd, m.msg, m.wparam, ctypes.addressof(cds))
            else:
                result = proc(hwnd, m.msg, m.wparam, m.lparam)
            return int(result or 0)

        return call


def CreateWindow(className: Any, windowName: str | None, style: int, x: int, y: int, width: int,  # noqa: N802,N803
                 height: int, parent: Any, menu: Any, hinstance: Any, reserved: Any) -> int:
    wc = _class(className)
    name = windowName or wc.lpszClassName
    win = _msgs.Window(name.replace("\\", "-").replace("/", "-").replace(" ", "_"))
    hwnd = _hwnd_of(win.name)
    win._handlers = _Procedure(hwnd, wc.lpfnWndProc)  # the window procedure sees every message
    _windows[hwnd] = win
    return hwnd


CreateWindowEx = lambda exStyle, className, windowName, *rest: CreateWindow(className, windowName, *rest)  # noqa: E731


def DestroyWindow(hwnd: int) -> None:  # noqa: N802
    win = _windows.pop(int(hwnd), None)
    if win is None:
        raise_error(ERROR_INVALID_WINDOW_HANDLE, "DestroyWindow")
    win.close()


def FindWindow(className: Any, windowName: str | None) -> int:  # noqa: N802,N803
    """The hwnd of the window named ``windowName`` (or ``className``); 0 if none, as pywin32 returns."""
    name = (windowName or className or "").replace("\\", "-").replace("/", "-").replace(" ", "_")
    if not name or _msgs.find_window(name) is None:
        return 0
    return _hwnd_of(name)


def _name(hwnd: Any, funcname: str) -> str:
    name = _names.get(int(hwnd))
    if name is None:
        raise_error(ERROR_INVALID_WINDOW_HANDLE, funcname)
    return name


def _copydata(lparam: Any) -> tuple[int, bytes]:
    """A COPYDATASTRUCT given as its address (what pywin32 programs pass, built
    with struct/array) or as a buffer holding it."""
    if isinstance(lparam, int):
        raw = ctypes.string_at(lparam, ctypes.sizeof(COPYDATASTRUCT))
    else:
        raw = bytes(memoryview(lparam))
    if len(raw) < 24:
        raise ValueError(f"WM_COPYDATA: a COPYDATASTRUCT is 24 bytes, got {len(raw)}")
    dw, cb, lp = struct.unpack_from("<QI4xQ", raw)
    return dw, ctypes.string_at(lp, cb) if cb else b""


def _send(hwnd: Any, msg: int, wparam: Any, lparam: Any, timeout: float | None, hung: bool, funcname: str) -> int:
    wparam = int(wparam or 0)
    try:
        if int(hwnd) == HWND_BROADCAST:
            _msgs.broadcast_message(msg, wparam, int(lparam or 0), timeout=timeout or 1.0)
            return 0
        name = _name(hwnd, funcname)
        if msg == WM_COPYDATA:
            tag, data = _copydata(lparam)
            return int(_msgs.copy_data(name, data, tag, timeout=timeout) or 0)
        return int(_msgs.send_message(name, msg, wparam, int(lparam or 0), timeout=timeout,
                                      abort_if_hung=hung) or 0)
    except Timeout:
        raise_error(ERROR_TIMEOUT, funcname)
    except NotFound:
        raise_error(ERROR_INVALID_WINDOW_HANDLE, funcname)
    except RemoteError as exc:
        raise_error(ERROR_GEN_FAILURE, funcname, f"the window procedure raised {exc.remote_type}")


def SendMessage(hwnd: Any, message: int, wparam: Any = 0, lparam: Any = 0) -> int:  # noqa: N802
    """The window procedure's result (waits as long as it takes, as Win32)."""
    return _send(hwnd, message, wparam, lparam, None, False, "SendMessage")


def SendMessageTimeout(hwnd: Any, message: int, wparam: Any, lparam: Any, flags: int,  # noqa: N802
                       timeout: int) -> tuple[int, int]:
    """``(1, result)``; ERROR_TIMEOUT raised if the window does not answer in ``timeout`` ms."""
    return 1, _send(hwnd, message, wparam, lparam, timeout / 1000.0, bool(flags & SMTO_ABORTIFHUNG),
                    "SendMessageTimeout")


def PostMessage(hwnd: Any, message: int, wparam: Any = 0, lparam: Any = 0) -> None:  # noqa: N802
    try:
        _msgs.post_message(_name(hwnd, "PostMessage"), message, int(wparam or 0), int(lparam or 0))
    except NotFound:
        raise_error(ERROR_INVALID_WINDOW_HANDLE, "PostMessage")
    except (_msgs.QueueFull, PermissionDenied):
        raise_error(1816, "PostMessage")  # ERROR_NOT_ENOUGH_QUOTA


def RegisterWindowMessage(name: str) -> int:  # noqa: N802
    """The same id (0xC000..0xFFFF) in every process of the user."""
    return _msgs.register_message(name)


def PumpWaitingMessages(firstMessage: int = 0, lastMessage: int = -1) -> int:  # noqa: N802,N803
    """Dispatch what is queued for this process's windows; 0 (1 would mean WM_QUIT)."""
    for win in list(_windows.values()):
        win.pump(0)
    return 0


def PumpMessages() -> None:  # noqa: N802
    """Dispatch until PostQuitMessage (or every window is destroyed)."""
    wins = list(_windows.values())
    if len(wins) == 1:
        wins[0].run()
        return
    while _windows and not any(w._quit for w in _windows.values()):
        for win in list(_windows.values()):
            if not win.closed:
                win.pump(0.02)


def PostQuitMessage(exitCode: int = 0) -> None:  # noqa: N802,N803
    for win in list(_windows.values()):
        win.quit()


def PyGetMemory(address: int, length: int) -> bytes:  # noqa: N802
    return ctypes.string_at(address, length)


def PyGetString(address: int, length: int | None = None) -> str:  # noqa: N802
    if length is None:
        return ctypes.wstring_at(address)
    return ctypes.wstring_at(address, length)


def PyMakeBuffer(length: int, address: int = 0) -> memoryview:  # noqa: N802
    return memoryview(ctypes.string_at(address, length) if address else bytearray(length))
