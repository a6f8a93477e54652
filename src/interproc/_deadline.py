"""Timeouts and deadlines: the one check of ``timeout=`` and the one place
that turns it into a point in time.

Every blocking call takes ``timeout=`` (seconds, an int or a float ``>= 0``;
``None`` = forever, ``0`` = only try).  ``"3"`` or ``True`` are mistakes that
would otherwise turn into a comparison error deep inside a wait, or a silent
1-second timeout: :func:`check_timeout` refuses them with a message naming
the argument.  A call that waits in several steps (connect, handshake, read)
converts the timeout once into a deadline on ``time.monotonic()`` — the
clock asyncio's default loops use too, so the same deadline serves both
drivers — and each step asks for the time left.
"""

from __future__ import annotations

import math
import time
from typing import Any

from ._errors import Timeout

now = time.monotonic


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


def deadline_of(timeout: Any, what: str = "timeout") -> float | None:
    """The monotonic time at which ``timeout`` runs out (None: never)."""
    t = check_timeout(timeout, what)
    return None if t is None else now() + t


def time_left(deadline: float | None) -> float | None:
    """Seconds until ``deadline`` (never negative), None for no deadline."""
    return None if deadline is None else max(0.0, deadline - now())


def left_or_raise(deadline: float | None, what: str) -> float | None:
    """Seconds left, or ``Timeout`` naming ``what`` once the deadline passed."""
    if deadline is None:
        return None
    left = deadline - now()
    if left <= 0:
        raise Timeout(f"{what} timed out")
    return left


def poll_ms(deadline: float | None) -> int | None:
    """Milliseconds left for ``poll()``, rounded up so a wait never ends early."""
    return None if deadline is None else max(0, int((deadline - now()) * 1000 + 0.999))


def nobody_came(what: str, timeout: float) -> Timeout:
    """The error after waiting ``timeout`` seconds for a name that never appeared.

    The rule for every kind (pipe, unix, tcp, shm, mailslot, serial, pub/sub,
    segments): ``timeout=None`` -> ``NotFound`` at once; a timeout -> wait that
    long for the name to appear, then ``Timeout``.
    """
    return Timeout(f"{what}: nothing appeared within {timeout} s")


def appear_delay(deadline: float, timeout: float | None, what: str, slice_: float = 0.05) -> float:
    """After ``NotFound`` while waiting up to ``deadline`` for ``what`` to appear:
    the seconds to sleep before looking again, or ``Timeout`` (:func:`nobody_came`)
    once the deadline has passed.  (With no deadline the caller lets NotFound go.)"""
    left = deadline - now()
    if left <= 0:
        raise nobody_came(what, timeout if timeout is not None else 0)
    return min(slice_, left)
