"""Tour: the clipboard — one process copies several formats, another pastes them."""

from __future__ import annotations

from . import Skip, Step, spawn_child, unique


def _paste() -> dict:
    """The second process: read both formats the first one copied."""
    from interproc import clipboard

    return {
        "formats": clipboard.formats(timeout=5),
        "text": clipboard.get_text(timeout=5),
        "html": clipboard.get("text/html", timeout=5).decode(),
    }


def run() -> str:
    from interproc import InterprocError, clipboard

    try:
        backend = clipboard.backend_name()
    except InterprocError as exc:
        raise Skip(f"no DISPLAY/WAYLAND_DISPLAY: {exc}") from None
    if backend != "x11":
        raise Skip(f"the tour's clipboard step copies two formats, which only the X11 backend offers ({backend})")
    token = unique("clip")
    clipboard.set({"text/plain": f"hello {token}", "text/html": f"<b>hello {token}</b>"})
    try:
        with spawn_child("interproc.cli.tour.step_clipboard:_paste") as child:
            got = child.result()
    finally:
        clipboard.clear()
    if got["text"] != f"hello {token}" or got["html"] != f"<b>hello {token}</b>":
        raise RuntimeError(f"pasted {got!r}")
    return f"copied text/plain + text/html ({backend}); another process saw {got['formats']} and pasted both"


STEPS = [Step(10, "clipboard", run)]
