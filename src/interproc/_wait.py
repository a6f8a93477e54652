"""``interproc.wait(objects, timeout=None)``: which of these channels and
listeners can receive or accept without waiting?

Like ``multiprocessing.connection.wait``, for every transport at once: each
object gives a descriptor (``fileno()``) and all of them go into one
``selectors`` wait, so any mix of ``shm://``, ``unix://``, ``tcp://``,
``pipe://``, serial and anonymous-pipe channels, pub/sub subscribers
(ready when a sample is there), and socket and named-pipe listeners, is
waited on by one thread that sleeps in the kernel.

Two refinements make the answer exact:

* A channel that has already buffered a message (a byte stream reads ahead
  whole frames) is ready although its descriptor is quiet: ``ready()`` is
  asked first, and an object that is ready returns at once.
* A descriptor may be readable for nothing: an ``shm://`` channel's or a
  subscriber's doorbell is rung whenever a message *may* have arrived.  Such an object is returned
  only if its ``ready()`` confirms it; otherwise the wait goes on.  Calling
  ``fileno()`` before every wait is part of that protocol (it re-arms the
  shm doorbell), which is why it is called on every round.
"""

from __future__ import annotations

import selectors
from typing import Any, Iterable

from ._deadline import deadline_of, time_left


def _ready(obj: Any) -> bool:
    check = getattr(obj, "ready", None)
    if check is None:
        return False
    try:
        return bool(check())
    except Exception:
        # The peer went away or the data is bad: recv() will not wait, it will
        # raise at once — which is "ready" for a caller deciding whom to serve.
        return True


def _fileno(obj: Any) -> int:
    try:
        get = obj.fileno
    except AttributeError:
        raise TypeError(f"interproc.wait cannot wait on {obj!r}: it has no fileno()") from None
    return get()  # HandleClosed for a closed handle


def wait(objects: Iterable[Any], timeout: float | None = None) -> list:
    """Wait until at least one of ``objects`` can receive (a channel) or accept
    (a listener) without blocking, or ``timeout`` seconds pass.

    Returns the ready objects, in the order given; ``[]`` when the timeout
    passed first.  A channel whose peer has gone counts as ready (its
    ``recv()`` raises ``ChannelClosed`` at once).  Raises ``HandleClosed`` for
    an object already closed, ``TypeError`` for one with no ``fileno()``.
    Ctrl-C interrupts the wait.
    """
    objs = list(objects)
    deadline = deadline_of(timeout)
    with selectors.DefaultSelector() as sel:
        while True:
            by_fd: dict[int, list[Any]] = {}
            for obj in objs:
                by_fd.setdefault(_fileno(obj), []).append(obj)
            # Asked after fileno() (which arms a doorbell), so a message that
            # arrives in between rings the bell and is not missed.
            ready = [obj for obj in objs if _ready(obj)]
            if ready:
                return ready
            for fd in by_fd:
                sel.register(fd, selectors.EVENT_READ)
            try:
                events = sel.select(time_left(deadline))
            finally:
                for fd in by_fd:
                    sel.unregister(fd)
            fired = {key.fd for key, _ in events}
            ready = [obj for fd, group in by_fd.items() if fd in fired for obj in group
                     if not hasattr(obj, "ready") or _ready(obj)]
            ready.sort(key=lambda obj: next(i for i, o in enumerate(objs) if o is obj))
            if ready:
                return ready
            if deadline is not None and time_left(deadline) == 0:
                return []
