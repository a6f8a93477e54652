"""``dde``: not implemented yet in the interproc pywin32 face.

Importing works; every function raises NotImplementedError naming what is
missing (see docs/pywin32.md, "Not yet covered")."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    if name.isupper() or name.startswith(("CF_", "WM_")):
        from . import win32con

        if hasattr(win32con, name):
            return getattr(win32con, name)

    def missing(*args: Any, **kw: Any) -> Any:
        raise NotImplementedError(
            f"dde.{name} is not implemented by the interproc pywin32 face yet; "
            "use interproc.dde directly meanwhile (see docs/pywin32.md)")

    missing.__name__ = name
    return missing
