"""``win32event``: events, mutexes, semaphores, waitable timers and waits,
on interproc.sync's named objects (a Win32 name is an interproc name)."""

from __future__ import annotations

from typing import Any

from .._errors import NotFound
from .._sync import Semaphore, _segment_class
from . import _kernel
from ._core import HANDLE, lookup, milliseconds, raise_error, set_last_error
from .win32con import (  # noqa: F401 - re-exported as pywin32's win32event does
    EVENT_ALL_ACCESS as EVENT_ALL_ACCESS,
    EVENT_MODIFY_STATE as EVENT_MODIFY_STATE,
    INFINITE as INFINITE,
    MAXIMUM_WAIT_OBJECTS as MAXIMUM_WAIT_OBJECTS,
    MUTEX_ALL_ACCESS as MUTEX_ALL_ACCESS,
    QS_ALLEVENTS as QS_ALLEVENTS,
    QS_ALLINPUT as QS_ALLINPUT,
    QS_ALLPOSTMESSAGE as QS_ALLPOSTMESSAGE,
    QS_HOTKEY as QS_HOTKEY,
    QS_KEY as QS_KEY,
    QS_MOUSEBUTTON as QS_MOUSEBUTTON,
    QS_MOUSEMOVE as QS_MOUSEMOVE,
    QS_PAINT as QS_PAINT,
    QS_POSTMESSAGE as QS_POSTMESSAGE,
    QS_SENDMESSAGE as QS_SENDMESSAGE,
    QS_TIMER as QS_TIMER,
    SEMAPHORE_ALL_ACCESS as SEMAPHORE_ALL_ACCESS,
    SYNCHRONIZE as SYNCHRONIZE,
    TIMER_ALL_ACCESS as TIMER_ALL_ACCESS,
    WAIT_ABANDONED as WAIT_ABANDONED,
    WAIT_ABANDONED_0 as WAIT_ABANDONED_0,
    WAIT_FAILED as WAIT_FAILED,
    WAIT_IO_COMPLETION as WAIT_IO_COMPLETION,
    WAIT_OBJECT_0 as WAIT_OBJECT_0,
    WAIT_TIMEOUT as WAIT_TIMEOUT,
)
from .winerror import (
    ERROR_ALREADY_EXISTS,
    ERROR_FILE_NOT_FOUND,
    ERROR_INVALID_PARAMETER,
    ERROR_NOT_OWNER,
    ERROR_TOO_MANY_POSTS,
)

_WAITABLE = (_kernel.EventObject, _kernel.MutexObject, _kernel.SemaphoreObject)


def _created(obj: Any) -> HANDLE:
    set_last_error(0 if obj.created else ERROR_ALREADY_EXISTS)
    return HANDLE._new(obj)


def _must_exist(kind: str, name: str, funcname: str) -> None:
    try:
        _segment_class(kind).open(_kernel.to_interproc_name(name, kind)).close()
    except NotFound:
        raise_error(ERROR_FILE_NOT_FOUND, funcname, f"no {kind} named {name!r}")


def CreateEvent(EventAttributes: Any, bManualReset: int, bInitialState: int, Name: str | None) -> HANDLE:  # noqa: N802,N803
    return _created(_kernel.EventObject(Name, bool(bManualReset), bool(bInitialState)))


def OpenEvent(desiredAccess: int, bInheritHandle: int, name: str) -> HANDLE:  # noqa: N802,N803
    _must_exist("event", name, "OpenEvent")
    return HANDLE._new(_kernel.EventObject(name, False, False))


def SetEvent(hEvent: Any) -> None:  # noqa: N802,N803
    lookup(hEvent, "SetEvent", _kernel.EventObject).set()


def ResetEvent(hEvent: Any) -> None:  # noqa: N802,N803
    lookup(hEvent, "ResetEvent", _kernel.EventObject).reset()


def PulseEvent(hEvent: Any) -> None:  # noqa: N802,N803
    """Set then reset.  Like Win32's (which Microsoft calls unreliable), a waiter
    not blocked at that instant misses the pulse."""
    ev = lookup(hEvent, "PulseEvent", _kernel.EventObject)
    ev.set()
    import time

    time.sleep(0.001)  # let blocked waiters run
    ev.reset()


def CreateMutex(MutexAttributes: Any, InitialOwner: int, Name: str | None) -> HANDLE:  # noqa: N802,N803
    obj = _kernel.MutexObject(Name)
    if InitialOwner:
        obj.wait(None)
    return _created(obj)


def OpenMutex(desiredAccess: int, bInheritHandle: int, name: str) -> HANDLE:  # noqa: N802,N803
    _must_exist("mutex", name, "OpenMutex")
    return HANDLE._new(_kernel.MutexObject(name))


def ReleaseMutex(hMutex: Any) -> None:  # noqa: N802,N803
    obj = lookup(hMutex, "ReleaseMutex", _kernel.MutexObject)
    try:
        obj.release()
    except RuntimeError:
        raise_error(ERROR_NOT_OWNER, "ReleaseMutex")


def CreateSemaphore(SemaphoreAttributes: Any, InitialCount: int, MaximumCount: int,  # noqa: N802,N803
                    SemaphoreName: str | None) -> HANDLE:
    if not 0 < MaximumCount or not 0 <= InitialCount <= MaximumCount:
        raise_error(ERROR_INVALID_PARAMETER, "CreateSemaphore", "need 0 <= initial <= maximum, maximum > 0")
    return _created(_kernel.SemaphoreObject(SemaphoreName, InitialCount, MaximumCount))


def OpenSemaphore(desiredAccess: int, bInheritHandle: int, name: str) -> HANDLE:  # noqa: N802,N803
    _must_exist("semaphore", name, "OpenSemaphore")
    return HANDLE._new(_kernel.SemaphoreObject(name, 0, Semaphore.MAX))


def ReleaseSemaphore(hSemaphore: Any, lReleaseCount: int) -> int:  # noqa: N802,N803
    """Add ``lReleaseCount``; returns the previous count."""
    obj = lookup(hSemaphore, "ReleaseSemaphore", _kernel.SemaphoreObject)
    if lReleaseCount < 1:
        raise_error(ERROR_INVALID_PARAMETER, "ReleaseSemaphore")
    try:
        return int(obj.release(lReleaseCount))
    except ValueError:
        raise_error(ERROR_TOO_MANY_POSTS, "ReleaseSemaphore")


def CreateWaitableTimer(TimerAttributes: Any, ManualReset: int, TimerName: str | None) -> HANDLE:  # noqa: N802,N803
    return _created(_kernel.TimerObject(TimerName, bool(ManualReset)))


def OpenWaitableTimer(desiredAccess: int, bInheritHandle: int, timerName: str) -> HANDLE:  # noqa: N802,N803
    _must_exist("event", timerName, "OpenWaitableTimer")
    return HANDLE._new(_kernel.TimerObject(timerName, False))


def SetWaitableTimer(handle: Any, dueTime: int, period: int, func: Any = None, param: Any = None,  # noqa: N802,N803
                     resume_state: int = 0) -> None:
    """``dueTime`` in 100 ns units, negative = relative (absolute FILETIMEs are
    taken relative to now); ``period`` in milliseconds, 0 = once."""
    timer = lookup(handle, "SetWaitableTimer", _kernel.TimerObject)
    due = abs(int(dueTime)) / 1e7
    if dueTime > 0:  # an absolute FILETIME: 100 ns since 1601
        import time

        due = max(0.0, (dueTime - 116444736000000000) / 1e7 - time.time())
    callback = None if func is None else (lambda: func(param, 0, 0))
    timer.arm(due, period / 1000.0 if period else None, callback)


def CancelWaitableTimer(handle: Any) -> None:  # noqa: N802
    lookup(handle, "CancelWaitableTimer", _kernel.TimerObject).cancel()


def _objects(handles: Any, funcname: str) -> list[Any]:
    try:
        items = list(handles)
    except TypeError:
        items = [handles]
    if not 0 < len(items) <= MAXIMUM_WAIT_OBJECTS:
        raise_error(ERROR_INVALID_PARAMETER, funcname, f"1..{MAXIMUM_WAIT_OBJECTS} handles")
    objs = []
    for h in items:
        obj = lookup(h, funcname)
        if not hasattr(obj, "try_take"):
            raise_error(ERROR_INVALID_PARAMETER, funcname, f"{type(obj).__name__} is not waitable here")
        objs.append(obj)
    return objs


def WaitForSingleObject(hHandle: Any, milliseconds_: int) -> int:  # noqa: N802,N803
    """WAIT_OBJECT_0, WAIT_ABANDONED (a mutex whose holder died) or WAIT_TIMEOUT."""
    got = _kernel.wait_objects(_objects([hHandle], "WaitForSingleObject"), False, milliseconds(milliseconds_))
    return WAIT_TIMEOUT if got is None else got


def WaitForMultipleObjects(handleList: Any, bWaitAll: int, milliseconds_: int) -> int:  # noqa: N802,N803
    """WAIT_OBJECT_0 + i (wait-any), WAIT_OBJECT_0 (wait-all), WAIT_ABANDONED_0 + i, WAIT_TIMEOUT."""
    objs = _objects(handleList, "WaitForMultipleObjects")
    got = _kernel.wait_objects(objs, bool(bWaitAll), milliseconds(milliseconds_))
    return WAIT_TIMEOUT if got is None else got


def MsgWaitForMultipleObjects(handleList: Any, bWaitAll: int, milliseconds_: int, wakeMask: int) -> int:  # noqa: N802,N803
    """As WaitForMultipleObjects: Linux threads have no message queue, so the
    WAIT_OBJECT_0 + len(handles) ("a message arrived") result never comes."""
    return WaitForMultipleObjects(handleList, bWaitAll, milliseconds_)


def MsgWaitForMultipleObjectsEx(handleList: Any, milliseconds_: int, wakeMask: int, flags: int) -> int:  # noqa: N802,N803
    return WaitForMultipleObjects(handleList, flags & 1, milliseconds_)
