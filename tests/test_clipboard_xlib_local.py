"""The X11 backend leaves python-xlib as it found it: no process-wide patch.

Its fast path for large INCR reads lives on its own connections only; another
python-xlib user in the same process gets the library unchanged.
"""

from __future__ import annotations

import os

import pytest

pytest.importorskip("Xlib")

from clipboard_xvfb import owner_pids, wait_gone, x11, xclip, xvfb  # noqa: E402,F401


def test_python_xlib_is_not_patched_process_wide(xclip, spawn, tmp_path):
    data = os.urandom(3 << 20)  # large enough for INCR, with events between the pieces
    (tmp_path / "data").write_bytes(data)
    xclip.copy(data, target="image/png")
    # A fresh process, so the check sees python-xlib before and after interproc loads.
    out = spawn.run(f"""
        import os
        from Xlib import display as xdisplay
        from Xlib.protocol import display as proto
        before = hasattr(proto.bytesview, "__bytes__")
        from interproc import clipboard
        from interproc._clipboard._x11 import X11Backend
        assert X11Backend().get("image/png", 30) == open({str(tmp_path / "data")!r}, "rb").read()
        assert "image/png" in clipboard.formats()
        after = hasattr(proto.bytesview, "__bytes__")
        other = xdisplay.Display(os.environ["DISPLAY"])
        print(before, after, type(other.display) is xdisplay._BaseDisplay)
        other.close()
    """, timeout=60)
    before, after, untouched = out.split()
    assert before == after, "python-xlib's bytesview was changed process-wide"
    assert untouched == "True", "another user's Display connection changed class"
