"""Which X binding for large clipboard reads: ``python benchmarks/clipboard_bindings.py``.

Reads 8 MiB of image/png from one owner (xclip, so INCR) five times each with
a plain xcffib ICCCM/INCR reader and with interproc's X11 backend (python-xlib
and its local fast path), and prints the medians.  Uses $DISPLAY, or starts
a private Xvfb.  Needs xclip and xcffib (``pip install xcffib``); xcffib is not
a dependency of interproc: this is the measurement behind keeping python-xlib.
"""

import os
import statistics
import subprocess
import sys
import time

import xcffib
import xcffib.xproto as xp

from clipboard_roundtrip import start_xvfb

def xcb_get(target_name: str) -> bytes:
    """ConvertSelection into a property of our window; follow INCR until the empty piece."""
    c = xcffib.connect()
    x = c.core
    root = c.get_setup().roots[0].root

    def atom(name: str) -> int:
        return x.InternAtom(False, len(name), name).reply().atom

    clip, target, prop, incr = atom("CLIPBOARD"), atom(target_name), atom("XCB_SEL"), atom("INCR")
    w = c.generate_id()
    x.CreateWindow(0, w, root, 0, 0, 1, 1, 0, xp.WindowClass.InputOnly, 0, xp.CW.EventMask,
                   [xp.EventMask.PropertyChange])
    x.ConvertSelection(w, clip, target, prop, 0)
    c.flush()
    while not isinstance(c.wait_for_event(), xp.SelectionNotifyEvent):
        pass
    r = x.GetProperty(True, w, prop, 0, 0, 0x1FFFFFFF).reply()
    if r.type != incr:
        c.disconnect()
        return bytes(r.value.buf())
    c.flush()  # the delete above tells the owner to send the first piece
    chunks = []
    while True:
        ev = c.wait_for_event()
        if isinstance(ev, xp.PropertyNotifyEvent) and ev.atom == prop and ev.state == xp.Property.NewValue:
            piece = x.GetProperty(True, w, prop, 0, 0, 0x1FFFFFFF).reply().value.buf()
            c.flush()
            if not len(piece):
                break
            chunks.append(bytes(piece))
    c.disconnect()
    return b"".join(chunks)


xvfb = None
if not os.environ.get("DISPLAY"):
    xvfb, os.environ["DISPLAY"] = start_xvfb()
data = os.urandom(8 << 20)
xclip = subprocess.Popen(["xclip", "-i", "-quiet", "-selection", "clipboard", "-t", "image/png"],
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
xclip.stdin.write(data)
xclip.stdin.close()
time.sleep(1.0)  # xclip owns the selection once it has read its input
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
from interproc._clipboard._x11 import X11Backend
b = X11Backend()
res = {"xcffib": [], "interproc (python-xlib, local fast path)": []}
for _ in range(5):
    t = time.perf_counter()
    assert xcb_get("image/png") == data
    res["xcffib"].append(time.perf_counter() - t)
    t = time.perf_counter()
    assert b.get("image/png", 60) == data
    res["interproc (python-xlib, local fast path)"].append(time.perf_counter() - t)
for k, v in res.items():
    print(f"{k:45s} median {statistics.median(v)*1000:7.1f} ms  ({8/statistics.median(v):6.1f} MiB/s)  all: {[round(x*1000) for x in v]}")
xclip.kill()
xclip.wait()
if xvfb is not None:
    xvfb.terminate()
    xvfb.wait()
