"""Deadlines: the one place that turns ``timeout=`` into a point in time.

Every blocking call takes ``timeout=`` (seconds; ``None`` = forever, ``0`` =
only try).  A call that waits in several steps (connect, handshake, read)
converts it once into a deadline on ``time.monotonic()`` — the clock
asyncio's default loops use too, so the same deadline serves both drivers —
and each step asks for the time left.
"""

from __future__ import annotations

import math
import time
from typing import Any

from ._errors import Timeout

now = time.monotonic


def check_timeout(timeout: Any, what: str = "timeout") -> float | None:
    """``timeout`` as a float, or ``ValueError`` naming what is wrong with it."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or math.isnan(timeout) or timeout < 0:
        raise ValueError(f"{what} must be None or a number of seconds >= 0, not {timeout!r}")
    return float(timeout)


def deadline_of(timeout: Any) -> float | None:
    """The monotonic time at which ``timeout`` runs out (None: never)."""
    t = check_timeout(timeout)
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
