"""pywintypes' core for the pywin32 face: errors, the handle table, OVERLAPPED.

Win32 hands out small integers that index a per-process table of kernel
objects; pywin32 wraps them in ``PyHANDLE``.  Here the table maps integers to
Python objects (an interproc channel, event, mutex, ...) that each have a
``close()``.  The integers are multiples of 4 like Win32's, so a program that
prints or compares them sees nothing unusual.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any, NoReturn

from .winerror import ERROR_INVALID_HANDLE, MESSAGES


class error(Exception):  # noqa: N801 - pywin32 spells it so
    """``pywintypes.error(winerror, funcname, strerror)``; ``args`` is that tuple."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.winerror: int | None = args[0] if len(args) > 0 else None
        self.funcname: str | None = args[1] if len(args) > 1 else None
        self.strerror: str | None = args[2] if len(args) > 2 else None
        self.detail = ""  # what the face knows beyond Win32's text (not in args)

    def __str__(self) -> str:
        return super().__str__() + (f" [{self.detail}]" if self.detail else "")


def raise_error(code: int, funcname: str, detail: str = "") -> NoReturn:
    """Raise ``error(code, funcname, FormatMessage text)`` with ``detail`` in ``.detail``."""
    exc = error(code, funcname, MESSAGES.get(code, f"Win32 error {code}."))
    exc.detail = detail
    raise exc


_table: dict[int, Any] = {}
_table_lock = threading.Lock()
_numbers = itertools.count(0x104, 4)
_last_error = threading.local()


def set_last_error(code: int) -> None:
    _last_error.code = code


def get_last_error() -> int:
    return getattr(_last_error, "code", 0)


class HANDLE:
    """``pywintypes.HANDLE``: an integer handle to an object of the table.

    ``int()``, ``bool()``, hashing and ``==`` behave like the integer;
    ``Close()`` closes the object (a second ``Close()`` raises
    ``error(ERROR_INVALID_HANDLE)``); garbage collection closes silently.
    """

    def __init__(self, value: int = 0) -> None:
        self._value = int(value)
        self._owns = False

    @classmethod
    def _new(cls, obj: Any) -> "HANDLE":
        with _table_lock:
            number = next(_numbers)
            _table[number] = obj
        h = cls(number)
        h._owns = True
        return h

    @property
    def handle(self) -> int:
        return self._value

    def __int__(self) -> int:
        return self._value

    __index__ = __int__

    def __bool__(self) -> bool:
        return self._value != 0

    def __hash__(self) -> int:
        return hash(self._value)

    def __eq__(self, other: object) -> bool:
        try:
            return bool(self._value == int(other))  # type: ignore[call-overload]
        except (TypeError, ValueError):
            return NotImplemented

    def __repr__(self) -> str:
        return f"<PyHANDLE:{self._value}>"

    def Close(self) -> None:  # noqa: N802
        close_handle(self._value, "CloseHandle")
        self._value, self._owns = 0, False

    close = Close

    def Detach(self) -> int:  # noqa: N802
        """Give up ownership: the object stays in the table, the number is returned."""
        value, self._owns = self._value, False
        return value

    def __enter__(self) -> "HANDLE":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._value and self._value in _table:
            self.Close()

    def __del__(self) -> None:
        if getattr(self, "_owns", False) and self._value in _table:
            try:
                close_handle(self._value, "CloseHandle")
            except Exception:
                pass  # garbage collection closes silently, as PyHANDLE does


PyHANDLE = HANDLE


def lookup(h: Any, funcname: str, kind: type | tuple[type, ...] | None = None) -> Any:
    """The object behind handle ``h``; ``error(ERROR_INVALID_HANDLE)`` if closed or foreign."""
    try:
        number = int(h)
    except (TypeError, ValueError):
        raise TypeError(f"{funcname}: expected a PyHANDLE or int, not {type(h).__name__}") from None
    obj = _table.get(number)
    if obj is None or (kind is not None and not isinstance(obj, kind)):
        raise_error(ERROR_INVALID_HANDLE, funcname)
    return obj


def close_handle(h: Any, funcname: str = "CloseHandle") -> None:
    number = int(h)
    with _table_lock:
        obj = _table.pop(number, None)
    if obj is None:
        raise_error(ERROR_INVALID_HANDLE, funcname)
    obj.close()


class OVERLAPPED:
    """``pywintypes.OVERLAPPED``: ``hEvent``, ``Offset``, ``OffsetHigh``,
    ``Internal`` (the status), ``InternalHigh`` (bytes transferred), ``object``."""

    def __init__(self) -> None:
        self.hEvent: Any = None
        self.Offset = 0
        self.OffsetHigh = 0
        self.Internal = 0
        self.InternalHigh = 0
        self.object: Any = None
        self.dword = 0
        # The emulation: a thread does the I/O; ``_done`` is set when it finished.
        self._done = threading.Event()
        self._done.set()
        self._error = 0
        self._result: Any = None

    def __repr__(self) -> str:
        return f"<PyOVERLAPPED Internal={self.Internal} InternalHigh={self.InternalHigh}>"


def overlapped_start(ol: OVERLAPPED, work: Any, finish: Any = None) -> None:
    """Run ``work() -> (status, nbytes, result)`` on a thread; complete ``ol``
    and set its ``hEvent`` when it returns (Win32 completion, minus IOCP)."""
    from .winerror import ERROR_IO_PENDING

    ol._done.clear()
    ol.Internal, ol.InternalHigh, ol._error, ol._result = ERROR_IO_PENDING, 0, ERROR_IO_PENDING, None
    if ol.hEvent:
        ev = _table.get(int(ol.hEvent))
        if ev is not None and hasattr(ev, "reset"):
            ev.reset()

    def run() -> None:
        try:
            status, nbytes, result = work()
        except error as exc:
            status, nbytes, result = exc.winerror or 0, 0, exc
        except Exception as exc:  # the emulation failed: report it as Win32 would, not silently
            status, nbytes, result = 31, 0, exc  # ERROR_GEN_FAILURE
        ol.Internal, ol.InternalHigh, ol._error, ol._result = status, nbytes, status, result
        ol._done.set()
        if ol.hEvent:
            ev = _table.get(int(ol.hEvent))
            if ev is not None:
                ev.set()

    threading.Thread(target=run, daemon=True, name="pywin32-overlapped").start()


def overlapped_complete(ol: OVERLAPPED, status: int, nbytes: int, result: Any = None) -> None:
    """Complete ``ol`` at once (an operation that finished synchronously)."""
    ol.Internal, ol.InternalHigh, ol._error, ol._result = status, nbytes, status, result
    ol._done.set()
    if ol.hEvent:
        ev = _table.get(int(ol.hEvent))
        if ev is not None:
            ev.set()


def as_bytes(data: Any, funcname: str) -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")  # pywin32 takes str as the ANSI code page; UTF-8 on Linux
    try:
        return bytes(memoryview(data))
    except TypeError:
        raise TypeError(f"{funcname}: data must be bytes, a buffer or str, not {type(data).__name__}") from None


def milliseconds(ms: int | None) -> float | None:
    """A Win32 timeout in milliseconds (INFINITE = 0xFFFFFFFF or -1) as seconds or None."""
    if ms is None or ms in (0xFFFFFFFF, -1):
        return None
    if ms < 0:
        raise ValueError(f"timeout must be >= 0 milliseconds or INFINITE, not {ms}")
    return ms / 1000.0
