# A Windows named-pipe service and its stress client, written against pywin32
# the way its pipe service demo does it.  Nothing here knows about Linux: the
# tests run it unchanged with `python -m interproc.pywin32`.
#
#   pywin32_pipe_service.py server NAME
#   pywin32_pipe_service.py client NAME THREADS MESSAGES
import sys
import _thread

import pywintypes
import win32api
import winerror
from win32event import (CreateEvent, OpenEvent, SetEvent, WaitForMultipleObjects,
                        INFINITE, WAIT_OBJECT_0, EVENT_MODIFY_STATE)
from win32file import ReadFile, WriteFile, AllocateReadBuffer, FlushFileBuffers
from win32pipe import (CreateNamedPipe, ConnectNamedPipe, DisconnectNamedPipe, CallNamedPipe,
                       GetOverlappedResult, PIPE_ACCESS_DUPLEX, PIPE_TYPE_MESSAGE,
                       PIPE_READMODE_MESSAGE, PIPE_WAIT, PIPE_UNLIMITED_INSTANCES,
                       NMPWAIT_WAIT_FOREVER)
from win32con import FILE_FLAG_OVERLAPPED


def serve(name):
    pipe_name = "\\\\.\\pipe\\" + name
    stop = CreateEvent(None, 1, 0, name + "-stop")
    overlapped = pywintypes.OVERLAPPED()
    overlapped.hEvent = CreateEvent(None, 0, 0, None)
    served = 0
    print("READY", flush=True)
    while True:
        pipe = CreateNamedPipe(pipe_name, PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED,
                               PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE | PIPE_WAIT,
                               PIPE_UNLIMITED_INSTANCES, 0, 0, 6000, None)
        try:
            hr = ConnectNamedPipe(pipe, overlapped)
        except pywintypes.error as exc:
            print("ConnectNamedPipe failed:", exc, flush=True)
            break
        if hr == winerror.ERROR_PIPE_CONNECTED:
            SetEvent(overlapped.hEvent)
        rc = WaitForMultipleObjects((stop, overlapped.hEvent), 0, INFINITE)
        if rc == WAIT_OBJECT_0:
            pipe.Close()
            break
        GetOverlappedResult(pipe, overlapped, 1)
        try:
            data = b""
            while True:
                hr, chunk = ReadFile(pipe, 256)  # messages longer than 256 arrive in parts
                data += chunk
                if hr != winerror.ERROR_MORE_DATA:
                    break
            WriteFile(pipe, b"echo:" + data)
            FlushFileBuffers(pipe)
            served += 1
        except pywintypes.error as exc:
            if exc.winerror not in (winerror.ERROR_BROKEN_PIPE, winerror.ERROR_NO_DATA):
                raise
        DisconnectNamedPipe(pipe)
        pipe.Close()
    print("SERVED", served, flush=True)


def call_pipe(fn, args):
    for _ in range(100):
        try:
            return fn(*args)
        except win32api.error as exc:
            if exc.winerror == winerror.ERROR_PIPE_BUSY:
                win32api.Sleep(50)
                continue
            raise
    raise RuntimeError("Could not make a connection to the server")


def stress_thread(pipe_name, number, count, failures, done):
    try:
        for i in range(count):
            msg = ("%d:%d:" % (number, i)).encode() + b"#" * 300
            reply = call_pipe(CallNamedPipe, (pipe_name, msg, 1024, NMPWAIT_WAIT_FOREVER))
            if reply != b"echo:" + msg:
                failures.append((number, i, reply[:40]))
    except Exception as exc:
        failures.append((number, repr(exc)))
    finally:
        SetEvent(done)


def client(name, threads, count):
    pipe_name = "\\\\.\\pipe\\" + name
    failures = []
    waits = []
    for number in range(threads):
        done = CreateEvent(None, 0, 0, None)
        waits.append(done)
        _thread.start_new_thread(stress_thread, (pipe_name, number, count, failures, done))
    WaitForMultipleObjects(waits, 1, INFINITE)
    stop = OpenEvent(EVENT_MODIFY_STATE, 0, name + "-stop")
    SetEvent(stop)
    print("FAILURES", len(failures), failures[:3], flush=True)
    print("DONE", threads * count, flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        serve(sys.argv[2])
    else:
        client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
