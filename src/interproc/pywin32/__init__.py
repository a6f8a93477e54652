"""A pywin32-compatible face over interproc: run Windows IPC code unchanged.

``install()`` makes the top-level modules ``pywintypes``, ``win32api``,
``win32con``, ``winerror``, ``win32event``, ``win32file``, ``win32pipe``,
``win32clipboard``, ``mmapfile``, ``win32gui`` and ``dde`` importable (a
meta path finder, so nothing is imported before it is asked for);
``python -m interproc.pywin32 SCRIPT`` does it for a whole program.  Without
either, none of those names exist.  See docs/pywin32.md.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from typing import Any as _Any

__all__ = ["FACE_MODULES", "install", "installed", "uninstall"]

#: Top-level module name -> the module of this package that implements it.
FACE_MODULES = {
    "dde": "interproc.pywin32.dde",
    "mmapfile": "interproc.pywin32.mmapfile",
    "pywintypes": "interproc.pywin32.pywintypes",
    "win32api": "interproc.pywin32.win32api",
    "win32clipboard": "interproc.pywin32.win32clipboard",
    "win32con": "interproc.pywin32.win32con",
    "win32event": "interproc.pywin32.win32event",
    "win32file": "interproc.pywin32.win32file",
    "win32gui": "interproc.pywin32.win32gui",
    "win32pipe": "interproc.pywin32.win32pipe",
    "winerror": "interproc.pywin32.winerror",
}


class _Loader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: _Any) -> _Any:
        return importlib.import_module(self.target)  # the same module object under both names

    def exec_module(self, module: _Any) -> None:
        pass  # already executed by import_module


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: _Any = None, target: _Any = None) -> _Any:
        if fullname in FACE_MODULES:
            return importlib.util.spec_from_loader(fullname, _Loader(FACE_MODULES[fullname]))
        return None


_finder = _Finder()


def install() -> None:
    """Make the pywin32 module names importable in this process (idempotent)."""
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)


def installed() -> bool:
    return _finder in sys.meta_path


def uninstall() -> None:
    """Undo ``install()``: the names are no longer importable (already imported
    modules stay where the program holds them)."""
    if _finder in sys.meta_path:
        sys.meta_path.remove(_finder)
    for name in FACE_MODULES:
        sys.modules.pop(name, None)
