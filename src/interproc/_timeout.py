"""The one check of a ``timeout=`` argument, used by every blocking call.

``timeout`` is seconds (an int or a float, ``>= 0``) or ``None`` (wait as
long as it takes).  ``"3"`` or ``True`` are mistakes that would otherwise
turn into a comparison error deep inside a wait, or a silent 1-second
timeout: they are refused here with a message that names the argument.
"""

from __future__ import annotations

import math
import time
from typing import Any


def check_timeout(timeout: Any, what: str = "timeout") -> float | None:
    """Return ``timeout`` if it is None or a number ``>= 0``; otherwise raise
    ``TypeError`` (not a number) or ``ValueError`` (negative or NaN)."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"{what} must be a number of seconds or None, not {type(timeout).__name__} {timeout!r}")
    if math.isnan(timeout) or timeout < 0:
        raise ValueError(f"{what} must be >= 0 seconds or None, not {timeout!r}")
    return timeout


def nobody_came(what: str, timeout: float) -> Exception:
    """The error after waiting ``timeout`` seconds for a name that never appeared.

    The rule for every kind (pipe, unix, tcp, shm, mailslot, serial, pub/sub,
    segments): ``timeout=None`` -> ``NotFound`` at once; a timeout -> wait that
    long for the name to appear, then ``Timeout``.
    """
    from ._errors import Timeout

    return Timeout(f"{what}: nothing appeared within {timeout} s")


def deadline_of(timeout: Any, what: str = "timeout") -> float | None:
    """The ``time.monotonic()`` instant ``timeout`` ends at (None: never)."""
    timeout = check_timeout(timeout, what)
    return None if timeout is None else time.monotonic() + timeout
