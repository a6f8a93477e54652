"""Waitable kernel objects of the face, on interproc.sync's named objects.

Each object answers ``try_take()`` (the wait condition, taking it if the wait
consumes it), ``undo()`` (give back what ``try_take`` took, for wait-all),
``wait(timeout)`` (one blocking wait) and ``close()``.  Unnamed Win32 objects
get a unique interproc name: they are still shared memory, so a handle passed
to a child by name-less inheritance is not supported (documented).
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from typing import Any

from ..sync import Event, Mutex, Semaphore


def private_name(kind: str) -> str:
    return f"pywin32-{kind}-{os.getpid()}-{secrets.token_hex(6)}"


def to_interproc_name(name: str | None, kind: str) -> str:
    """A Win32 object name as an interproc name: ``Global\\`` and ``Local\\``
    prefixes drop, backslashes become '-' (interproc names have no '\\')."""
    if name is None:
        return private_name(kind)
    for prefix in ("Global\\", "Local\\", "Session\\"):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name.replace("\\", "-").replace("/", "-")


class EventObject:
    def __init__(self, name: str | None, manual: bool, initial: bool, *, must_exist: bool = False) -> None:
        self.ev = Event(to_interproc_name(name, "event"), manual_reset=manual, initial=initial)
        self.created = self.ev.created

    def set(self) -> None:
        self.ev.set()

    def reset(self) -> None:
        self.ev.reset()

    def try_take(self) -> bool:
        return self.ev.wait(0) if not self.ev.manual_reset else self.ev.is_set()

    def undo(self) -> None:
        if not self.ev.manual_reset:
            self.ev.set()

    def wait(self, timeout: float | None) -> bool:
        return self.ev.wait(timeout)

    abandoned = False

    def close(self) -> None:
        self.ev.close()


class MutexObject:
    def __init__(self, name: str | None) -> None:
        self.mx = Mutex(to_interproc_name(name, "mutex"))
        self.created = self.mx.created
        self.abandoned = False

    def try_take(self) -> bool:
        if self.mx.acquire(False):
            self.abandoned = self.mx.abandoned
            return True
        return False

    def undo(self) -> None:
        self.mx.release()

    def wait(self, timeout: float | None) -> bool:
        if self.mx.acquire(True, timeout):
            self.abandoned = self.mx.abandoned
            return True
        return False

    def release(self) -> None:
        self.mx.release()

    def close(self) -> None:
        self.mx.close()


class SemaphoreObject:
    def __init__(self, name: str | None, initial: int, maximum: int) -> None:
        self.sem = Semaphore(to_interproc_name(name, "semaphore"), initial, maximum=maximum)
        self.created = self.sem.created

    abandoned = False

    def try_take(self) -> bool:
        return self.sem.acquire(False)

    def undo(self) -> None:
        self.sem.release()

    def wait(self, timeout: float | None) -> bool:
        return self.sem.acquire(True, timeout)

    def release(self, count: int) -> int:
        return self.sem.release(count)

    def close(self) -> None:
        self.sem.close()


class TimerObject(EventObject):
    """A waitable timer: an interproc Event that a thread of the process that
    called SetWaitableTimer sets when the timer is due (and every period)."""

    def __init__(self, name: str | None, manual: bool) -> None:
        super().__init__(name, manual, False)
        self._gen = 0
        self._lock = threading.Lock()

    def arm(self, due: float, period: float | None, callback: Any = None) -> None:
        with self._lock:
            self._gen += 1
            gen = self._gen
        self.ev.reset()

        def run() -> None:
            when = time.monotonic() + due
            while True:
                left = when - time.monotonic()
                if left > 0:
                    time.sleep(min(left, 0.05))
                    if self._gen != gen:
                        return
                    continue
                if self._gen != gen:
                    return
                self.ev.set()
                if callback is not None:
                    callback()
                if not period:
                    return
                when += period

        threading.Thread(target=run, daemon=True, name="pywin32-timer").start()

    def cancel(self) -> None:
        with self._lock:
            self._gen += 1

    def close(self) -> None:
        self.cancel()
        super().close()


def wait_objects(objs: list[Any], wait_all: bool, timeout: float | None) -> int | None:
    """Index of the object that satisfied a wait-any (``index | 0x80`` when it
    was an abandoned mutex), 0 for wait-all, None on timeout.

    A single object blocks natively; several are polled (Linux has no
    wait-for-many across futexes in shared memory before futex_waitv): first
    ~200 us of yielding looks, then sleeps growing from 50 us to 2 ms.
    """
    if len(objs) == 1:
        if objs[0].wait(timeout):
            return 0x80 if objs[0].abandoned else 0
        return None
    start = time.monotonic()
    deadline = None if timeout is None else start + timeout
    spin_until = start + 0.0002
    pause = 0.00005
    while True:
        if wait_all:
            taken = []
            for obj in objs:
                if not obj.try_take():
                    break
                taken.append(obj)
            if len(taken) == len(objs):
                return 0x80 if any(o.abandoned for o in objs) else 0
            for obj in reversed(taken):
                obj.undo()
        else:
            for i, obj in enumerate(objs):
                if obj.try_take():
                    return (0x80 | i) if obj.abandoned else i
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            return None
        if now < spin_until:
            os.sched_yield()
            continue
        time.sleep(pause if deadline is None else min(pause, deadline - now))
        pause = min(pause * 1.5, 0.002)
