"""Views of a slot that can be taken back: the loan and sample lifetime rule.

A memoryview sliced from the segment shares the segment's buffer, so
``release()`` on it says nothing about a numpy array made from it (numpy
takes its own view of the same buffer).  Each loan or sample therefore gets
its own exporter (a ctypes array over the slot): every view derived from
``buf`` -- numpy arrays, slices, ``memoryview(buf)`` -- holds that exporter,
so after ``buf.release()`` a reference still held is a view still alive.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any


def lend(segment: memoryview, start: int, n: int, readonly: bool) -> tuple[Any, memoryview]:
    """``(exporter, view)`` of ``segment[start:start + n]`` with its own buffer."""
    exporter = (ctypes.c_ubyte * n).from_buffer(segment, start)
    raw = memoryview(exporter)
    view = raw.cast("B")
    raw.release()
    if readonly:
        ro = view.toreadonly()
        view.release()
        view = ro
    return exporter, view


def take_back(exporter: Any, view: memoryview) -> bool:
    """Release ``view``; False if another view of the slot is still alive."""
    view.release()
    # References: the caller's, getrefcount's argument, and one per live buffer.
    return sys.getrefcount(exporter) <= 3
