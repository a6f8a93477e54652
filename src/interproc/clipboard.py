"""The desktop clipboard: many formats, any program, with change notification.

>>> from interproc import clipboard
>>> clipboard.set({"text/plain": "hello", "text/html": "<b>hello</b>"})
>>> clipboard.get_text()
'hello'
>>> clipboard.formats()
['text/plain', 'text/html']

Formats are MIME names (``text/plain``, ``text/html``, ``image/png``) or any
name registered with :func:`register_format`.  After :func:`set` returns, the
content stays available to other programs, even after this process exits:
on X11 a background owner process serves it until another program copies
something (see ``docs/clipboard.md``).

Every function takes ``selection="CLIPBOARD"`` (or ``"PRIMARY"``, the X11/
Wayland middle-click selection) and the blocking ones take ``timeout=``
(seconds; ``None`` waits forever; the default is 10 s because the other end
is some other program that may hang).
"""

from __future__ import annotations

from typing import Callable as _Callable, Mapping as _Mapping

from ._clipboard import backend as _backend, choose as _choose
from ._clipboard._base import (
    HTML as HTML,
    PNG as PNG,
    TEXT as TEXT,
    Change as Change,
    Changes as Changes,
    Data as _Data,
    Watcher as Watcher,
    check_format as _check_format,
    normalize as _normalize,
)

DEFAULT_TIMEOUT = 10.0

__all__ = [
    "Change",
    "Changes",
    "DEFAULT_TIMEOUT",
    "HTML",
    "PNG",
    "TEXT",
    "Watcher",
    "backend_name",
    "changes",
    "clear",
    "formats",
    "get",
    "get_text",
    "register_format",
    "set",
    "set_text",
    "watch",
]


def backend_name() -> str:
    """``"x11"``, ``"wayland"`` or ``"macos"``; an InterprocError says why there is none."""
    return _choose()


def set(data: _Mapping[str, _Data], *, selection: str = "CLIPBOARD", timeout: float | None = DEFAULT_TIMEOUT) -> None:
    """Put ``{format: bytes | str}`` on the clipboard (``str`` is stored as UTF-8).

    Returns once the content is owned and served; it stays available after
    this process exits, until another program copies something.
    """
    _backend(selection).set(_normalize(data), timeout)


def set_text(text: str, *, selection: str = "CLIPBOARD", timeout: float | None = DEFAULT_TIMEOUT) -> None:
    if not isinstance(text, str):
        raise TypeError(f"set_text takes a str, not {type(text).__name__}")
    set({TEXT: text}, selection=selection, timeout=timeout)


def get(format: str, *, selection: str = "CLIPBOARD", timeout: float | None = DEFAULT_TIMEOUT) -> bytes:
    """The clipboard content in ``format``; ``NotFound`` if empty or not offered in it.

    ``text/plain`` comes back as UTF-8 whichever text target the owner offers.
    """
    return _backend(selection).get(_check_format(format), timeout)


def get_text(*, selection: str = "CLIPBOARD", timeout: float | None = DEFAULT_TIMEOUT) -> str:
    return get(TEXT, selection=selection, timeout=timeout).decode("utf-8", "replace")


def formats(*, selection: str = "CLIPBOARD", timeout: float | None = DEFAULT_TIMEOUT) -> list[str]:
    """The formats the current owner offers, in its order ([] if the clipboard is empty)."""
    return _backend(selection).formats(timeout)


def register_format(name: str) -> int:
    """The id of format ``name``, the same in every process (``RegisterClipboardFormat``).

    X11: the atom of that name, valid for the life of the X server.  Wayland
    and macOS: an id in 0xC000..0xFFFF from a per-user registry file.
    """
    return _backend().register_format(_check_format(name))


def clear(*, selection: str = "CLIPBOARD", timeout: float | None = DEFAULT_TIMEOUT) -> None:
    """Empty the clipboard; its owner (ours or another program's) is told it lost it."""
    _backend(selection).clear(timeout)


def watch(callback: _Callable[[Change], object], *, selection: str = "CLIPBOARD") -> Watcher:
    """Call ``callback(change)`` on every change of the clipboard, by any program.

    Returns at once; the callback runs in a background thread until
    ``watcher.close()``.  X11 uses XFixes selection events: no polling.
    """
    return Watcher(_backend(selection).change_source(), callback)


def changes(*, selection: str = "CLIPBOARD", timeout: float | None = None) -> Changes:
    """Iterate over changes: ``for change in clipboard.changes(timeout=5): ...``.

    Each step waits up to ``timeout`` seconds for the next change; the
    iteration ends when none comes in time (``None``: waits forever).
    """
    return Changes(_backend(selection).change_source(), timeout)
