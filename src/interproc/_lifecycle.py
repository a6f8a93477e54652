"""Handles dropped unclosed, and the ``interproc`` logger.

``finalizer(obj, release, *args, what=...)`` is ``weakref.finalize`` plus
the standard library's habit (``socket``, ``subprocess``, ``open``): a handle
that is garbage-collected without ``close()`` emits ``ResourceWarning:
unclosed <what>`` and is then released.  ``close()`` calls :func:`run_quietly`,
which releases without the warning.  At interpreter exit nothing warns (the
objects are still alive, not dropped).

``log`` is ``logging.getLogger("interproc")``: connection-level events
(accept, handshake failure, peer gone, protocol error) go there, at DEBUG
for the routine ones and WARNING for what a server operator wants to see.
It has a ``NullHandler``, so nothing prints unless the application
configures logging.
"""

from __future__ import annotations

import logging
import warnings
import weakref
from typing import Any, Callable

log = logging.getLogger("interproc")
log.addHandler(logging.NullHandler())


def _dropped(release: Callable[..., Any], args: tuple, what: str) -> None:
    if not getattr(weakref.finalize, "_shutdown", False):
        warnings.warn(f"unclosed {what}", ResourceWarning, stacklevel=2)
    release(*args)


def finalizer(obj: object, release: Callable[..., Any], *args: Any, what: str) -> weakref.finalize:
    """A finalizer that releases ``args`` and warns if ``obj`` was never closed."""
    return weakref.finalize(obj, _dropped, release, args, what)


def run_quietly(fin: weakref.finalize) -> None:
    """Run a :func:`finalizer` now, for ``close()``: release, no warning."""
    info = fin.detach()
    if info is None:
        return
    _obj, func, args, kwargs = info
    if func is _dropped:
        release, args, _what = args
        release(*args)
    else:  # a plain weakref.finalize (a handle kind that does not warn)
        func(*args, **kwargs)
