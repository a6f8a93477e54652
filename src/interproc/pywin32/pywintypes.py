"""``pywintypes``: ``error``, ``HANDLE``, ``OVERLAPPED`` (see _core)."""

from ._core import HANDLE, OVERLAPPED, PyHANDLE, error

com_error = error  # no COM on Linux: the name exists so ``except com_error`` parses

__all__ = ["HANDLE", "OVERLAPPED", "PyHANDLE", "com_error", "error"]
