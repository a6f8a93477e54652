"""Clipboard backends and the one place that picks between them.

``choose(env, platform)`` decides by environment only (so it is unit-testable):

* ``INTERPROC_CLIPBOARD=x11|wayland|macos`` forces a backend;
* macOS (``sys.platform == "darwin"``) uses pbcopy/pbpaste;
* ``WAYLAND_DISPLAY`` set: wl-copy/wl-paste, unless they are missing and
  ``DISPLAY`` (XWayland) is set too, then X11;
* ``DISPLAY`` set: X11;
* nothing: an ``InterprocError`` naming what is missing, at once.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Mapping

from .._errors import InterprocError
from ._base import Backend, check_selection

BACKENDS = ("x11", "wayland", "macos")


def choose(env: Mapping[str, str] | None = None, platform: str | None = None,
           which=shutil.which) -> str:
    """Name of the backend for this environment, or InterprocError saying what is missing."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    forced = env.get("INTERPROC_CLIPBOARD", "")
    if forced:
        if forced not in BACKENDS:
            raise InterprocError(
                f"INTERPROC_CLIPBOARD={forced!r} is not a clipboard backend; use one of {', '.join(BACKENDS)}"
            )
        return forced
    if platform == "darwin":
        return "macos"
    if platform.startswith("win"):
        raise InterprocError("there is no Windows clipboard backend yet")
    if env.get("WAYLAND_DISPLAY"):
        if which("wl-copy") and which("wl-paste"):
            return "wayland"
        if env.get("DISPLAY"):
            return "x11"  # XWayland serves X11 clients
        raise InterprocError(
            "WAYLAND_DISPLAY is set but wl-copy/wl-paste (package wl-clipboard) are not installed, "
            "and there is no DISPLAY for X11 either"
        )
    if env.get("DISPLAY"):
        return "x11"
    raise InterprocError(
        "no clipboard here: neither DISPLAY (X11) nor WAYLAND_DISPLAY (Wayland) is set "
        "(a headless session, cron job or service has no desktop clipboard)"
    )


def backend(selection: str = "CLIPBOARD") -> Backend:
    check_selection(selection)
    kind = choose()
    if kind == "x11":
        from ._x11 import X11Backend

        return X11Backend(selection)
    if kind == "wayland":
        from ._wayland import WaylandBackend

        return WaylandBackend(selection)
    from ._macos import MacOSBackend

    return MacOSBackend(selection)
