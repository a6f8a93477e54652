"""Named synchronisation objects usable by unrelated processes.

Each object is a small segment of its own kind (``mutex``, ``semaphore``,
``event``), created or opened like Win32's CreateMutex / CreateSemaphore /
CreateEvent: the first caller creates it, later callers open it and their
creation arguments are ignored (``created`` tells which happened).

Waiting is a futex sleep on a 32-bit word of the segment, with a waiter
count so that the common uncontended release costs no system call.
"""

from __future__ import annotations

import struct
import threading
import time
from typing import Any

from . import _native
from ._errors import Timeout
from ._naming import Scope
from ._shm import SharedMemory, register_details

_U32 = {"size": 4, "signed": False}
CANCEL_SLICE = 1.0


def _deadline(timeout: float | None) -> float | None:
    if timeout is None:
        return None
    if timeout < 0:
        raise ValueError(f"timeout must be None or >= 0 seconds, not {timeout}")
    return time.monotonic() + timeout


def _left(deadline: float | None) -> float | None:
    """Seconds left, None for no deadline, or -1.0 once it has passed."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    return left if left > 0 else -1.0


def _wait_for(buf: memoryview, take: Any, deadline: float | None,
              cancel: threading.Event | None) -> bool:
    """Sleep on the futex word at offset 0 until ``take()`` succeeds.

    The word at offset 8 counts sleepers so that wakers can skip the system
    call when nobody sleeps.  ``cancel`` (set by asyncio wrappers, followed
    by a wake-up) makes the wait give up and return False.
    """
    while True:
        if take():
            return True
        left = _left(deadline)
        if (left is not None and left < 0) or (cancel is not None and cancel.is_set()):
            return False
        if cancel is not None:
            # The canceller's wake-up can slip in between the check above and
            # the sleep below; a bounded sleep closes that window.
            left = CANCEL_SLICE if left is None else min(left, CANCEL_SLICE)
        _native.atomic_add(buf, 8, 1, **_U32)
        try:
            _native.futex_wait(buf, 0, 0, left)
        finally:
            _native.atomic_add(buf, 8, -1, **_U32)


class RobustLock:
    """A robust, recursive, process-shared mutex at ``(buf, offset)``.

    ``acquire`` succeeds even if the previous owner died holding the lock, and
    then sets ``abandoned`` until the new holder releases it (the Win32
    WAIT_ABANDONED rule).  Owned by a thread, like a Win32 mutex.
    """

    def __init__(self, buf: memoryview, offset: int = 0) -> None:
        self._buf, self._off = buf, offset
        self._local = threading.local()
        self.abandoned = False

    @staticmethod
    def initialise(buf: memoryview, offset: int = 0) -> None:
        _native.mutex_init(buf, offset)

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Acquire the lock; False if ``timeout`` (or ``blocking=False``) ran out."""
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be None or >= 0 seconds, not {timeout}")
        got = _native.mutex_lock(self._buf, self._off, timeout if blocking else 0.0)
        if got < 0:
            return False
        depth = getattr(self._local, "depth", 0)
        self._local.depth = depth + 1
        if got == 1:
            self.abandoned = True
        return True

    def release(self) -> None:
        depth = getattr(self._local, "depth", 0)
        if depth == 0:
            raise RuntimeError("cannot release a mutex this thread does not hold")
        self._local.depth = depth - 1
        if depth == 1:
            self.abandoned = False
        _native.mutex_unlock(self._buf, self._off)

    def locked_by_me(self) -> bool:
        return getattr(self._local, "depth", 0) > 0

    def __enter__(self) -> "RobustLock":
        if not self.acquire():
            raise Timeout("mutex not acquired")  # pragma: no cover - no timeout given
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class _Named:
    """Shared plumbing: one segment of kind KIND, opened or created."""

    KIND = ""
    SIZE = 64

    def __init__(self, name: str, *, scope: Scope = "user", mode: int | None = None,
                 timeout: float | None = None) -> None:
        seg_cls = _segment_class(self.KIND)
        self._shm = seg_cls.create_or_open(name, self.SIZE, init=self._init, scope=scope,
                                           mode=mode, timeout=timeout)
        self._buf = self._shm.buf
        self.name = name
        self.created = self._shm.created

    def _init(self, buf: memoryview) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._shm.close()

    @property
    def closed(self) -> bool:
        return self._shm.closed

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}{' closed' if self.closed else ''}>"


_SEGMENT_CLASSES: dict[str, type[SharedMemory]] = {}


def _segment_class(kind: str) -> type[SharedMemory]:
    """A SharedMemory subclass whose segments are named with ``kind``."""
    if kind not in _SEGMENT_CLASSES:
        _SEGMENT_CLASSES[kind] = type(f"_{kind.title()}Segment", (SharedMemory,), {"KIND": kind})
    return _SEGMENT_CLASSES[kind]


class Mutex(_Named):
    """A named, robust, recursive mutex (Win32 CreateMutex).

    If its owner dies holding it, the next ``acquire`` still succeeds and sets
    ``abandoned = True`` until that holder releases.
    """

    KIND = "mutex"

    def __init__(self, name: str, *, scope: Scope = "user", mode: int | None = None,
                 timeout: float | None = None) -> None:
        super().__init__(name, scope=scope, mode=mode, timeout=timeout)
        self._lock = RobustLock(self._buf, 0)

    def _init(self, buf: memoryview) -> None:
        RobustLock.initialise(buf, 0)

    @property
    def abandoned(self) -> bool:
        return self._lock.abandoned

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> "Mutex":
        self._lock.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


# Semaphore layout: count u32 @0 (futex word), maximum u32 @4, waiters u32 @8
class Semaphore(_Named):
    """A named counting semaphore (Win32 CreateSemaphore).

    ``initial`` and ``maximum`` apply when this call creates it.  Releasing
    past ``maximum`` raises ``ValueError`` (ERROR_TOO_MANY_POSTS).  Like a
    Win32 semaphore, a count taken by a process that dies is not returned.
    """

    KIND = "semaphore"
    MAX = 0x7FFFFFFF

    def __init__(self, name: str, initial: int = 1, *, maximum: int | None = None,
                 scope: Scope = "user", mode: int | None = None, timeout: float | None = None) -> None:
        maximum = self.MAX if maximum is None else maximum
        if not 0 < maximum <= self.MAX:
            raise ValueError(f"maximum must be 1..{self.MAX}, got {maximum}")
        if not 0 <= initial <= maximum:
            raise ValueError(f"initial must be 0..maximum ({maximum}), got {initial}")
        self._initial, self._maximum = initial, maximum
        super().__init__(name, scope=scope, mode=mode, timeout=timeout)

    def _init(self, buf: memoryview) -> None:
        struct.pack_into("<III", buf, 0, self._initial, self._maximum, 0)

    @property
    def maximum(self) -> int:
        return _native.atomic_load(self._buf, 4, **_U32)

    @property
    def value(self) -> int:
        """The current count (a snapshot)."""
        return _native.atomic_load(self._buf, 0, **_U32)

    def acquire(self, blocking: bool = True, timeout: float | None = None,
                _cancel: threading.Event | None = None) -> bool:
        buf = self._buf

        def take() -> bool:
            while (v := _native.atomic_load(buf, 0, **_U32)) > 0:
                if _native.atomic_compare_exchange(buf, 0, v, v - 1, **_U32)[0]:
                    return True
            return False

        return _wait_for(buf, take, _deadline(timeout if blocking else 0.0), _cancel)

    def release(self, count: int = 1) -> int:
        """Add ``count``; returns the previous count."""
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        buf = self._buf
        while True:
            v = _native.atomic_load(buf, 0, **_U32)
            if v + count > self.maximum:
                raise ValueError(f"semaphore {self.name!r}: releasing {count} would pass its maximum {self.maximum}")
            if _native.atomic_compare_exchange(buf, 0, v, v + count, **_U32)[0]:
                break
        if _native.atomic_load(buf, 8, **_U32):
            _native.futex_wake(buf, 0, count)
        return v

    def _wake_all(self) -> None:
        _native.futex_wake(self._buf, 0)

    def __enter__(self) -> "Semaphore":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# Event layout: state u32 @0 (futex word), manual_reset u32 @4, waiters u32 @8
class Event(_Named):
    """A named event (Win32 CreateEvent).

    Manual-reset events stay set until ``reset()`` and release every waiter;
    auto-reset events release exactly one waiter per ``set()`` and reset
    themselves.  ``manual_reset`` and ``initial`` apply when this call
    creates the event; an opened event keeps the creator's kind.
    """

    KIND = "event"

    def __init__(self, name: str, *, manual_reset: bool = False, initial: bool = False,
                 scope: Scope = "user", mode: int | None = None, timeout: float | None = None) -> None:
        self._want = (int(bool(initial)), int(bool(manual_reset)))
        super().__init__(name, scope=scope, mode=mode, timeout=timeout)

    def _init(self, buf: memoryview) -> None:
        struct.pack_into("<III", buf, 0, self._want[0], self._want[1], 0)

    @property
    def manual_reset(self) -> bool:
        return bool(_native.atomic_load(self._buf, 4, **_U32))

    def is_set(self) -> bool:
        return bool(_native.atomic_load(self._buf, 0, **_U32))

    def set(self) -> None:
        buf = self._buf
        _native.atomic_store(buf, 0, 1, **_U32)
        if _native.atomic_load(buf, 8, **_U32):
            _native.futex_wake(buf, 0, 2**31 - 1 if self.manual_reset else 1)

    def reset(self) -> None:
        _native.atomic_store(self._buf, 0, 0, **_U32)

    def wait(self, timeout: float | None = None, _cancel: threading.Event | None = None) -> bool:
        """Wait until set; auto-reset events are reset by the waiter they release."""
        buf = self._buf
        if self.manual_reset:
            def take() -> bool:
                return bool(_native.atomic_load(buf, 0, **_U32))
        else:
            def take() -> bool:
                return _native.atomic_compare_exchange(buf, 0, 1, 0, **_U32)[0]
        return _wait_for(buf, take, _deadline(timeout), _cancel)

    def _wake_all(self) -> None:
        _native.futex_wake(self._buf, 0)


def _details(kind: str) -> Any:
    def describe(buf: memoryview) -> dict:
        if kind == "semaphore":
            count, maximum, waiters = struct.unpack_from("<III", buf, 0)
            return {"count": count, "maximum": maximum, "waiters": waiters}
        state, manual, waiters = struct.unpack_from("<III", buf, 0)
        return {"set": bool(state), "manual_reset": bool(manual), "waiters": waiters}
    return describe


register_details("semaphore", _details("semaphore"))
register_details("event", _details("event"))
