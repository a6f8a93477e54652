"""The pywin32 face (issue 13): handles, errors, sync, pipes, mailslots, mmapfile,
across real processes, and a Windows pipe service program run unchanged."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from conftest import SRC, wait_for_line
from interproc.pipes import NamedPipe
from interproc.mailslot import Mailslot
from interproc.pywin32 import mmapfile, pywintypes, win32api, win32con, win32event, win32file, win32pipe, winerror

ENV = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
DEMO = os.path.join(os.path.dirname(__file__), "data", "pywin32_pipe_service.py")
FACE = [sys.executable, "-m", "interproc.pywin32"]


def _pipe(name):
    return "\\\\.\\pipe\\" + name


def _server_pipe(name, max_instances=1, mode=win32con.PIPE_TYPE_MESSAGE | win32con.PIPE_READMODE_MESSAGE):
    return win32pipe.CreateNamedPipe(_pipe(name), win32pipe.PIPE_ACCESS_DUPLEX, mode, max_instances,
                                     4096, 4096, 0, None)


def test_names_are_not_importable_unless_installed():
    code = ("import importlib.util, interproc, interproc.pywin32 as p\n"
            "assert importlib.util.find_spec('win32pipe') is None\n"
            "p.install()\nimport win32pipe, pywintypes, dde, win32clipboard, mmapfile\n"
            "assert win32pipe.CreateNamedPipe is p.win32pipe.CreateNamedPipe if hasattr(p, 'win32pipe') else True\n"
            "p.uninstall()\nassert importlib.util.find_spec('win32pipe') is None\nprint('OK')")
    out = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "OK", out.stderr


def test_handle_semantics(name):
    h = win32event.CreateEvent(None, 1, 0, name)
    assert int(h) % 4 == 0 and bool(h) and h == int(h) and hash(h) == hash(int(h))
    assert {int(h): 1}[h] == 1
    number = int(h)
    win32api.CloseHandle(h)
    with pytest.raises(pywintypes.error) as info:
        win32api.CloseHandle(number)
    assert info.value.args == (winerror.ERROR_INVALID_HANDLE, "CloseHandle", "The handle is invalid.")
    assert info.value.winerror == 6 and info.value.funcname == "CloseHandle"
    with pytest.raises(pywintypes.error) as info:
        win32event.SetEvent(number)
    assert info.value.winerror == winerror.ERROR_INVALID_HANDLE and info.value.funcname == "SetEvent"
    h2 = win32event.CreateEvent(None, 1, 0, name)
    h2.Close()
    with pytest.raises(pywintypes.error):
        h2.Close()
    win32event.CreateEvent(None, 0, 0, None)  # dropped: the GC closes it silently


def test_last_error_already_exists(name):
    a = win32event.CreateMutex(None, 0, name)
    assert win32api.GetLastError() == 0
    b = win32event.CreateMutex(None, 0, name)
    assert win32api.GetLastError() == winerror.ERROR_ALREADY_EXISTS == 183
    a.Close(), b.Close()
    with pytest.raises(pywintypes.error) as info:
        win32event.OpenEvent(win32con.EVENT_ALL_ACCESS, 0, name + "-none")
    assert info.value.winerror == winerror.ERROR_FILE_NOT_FOUND


def test_constants_have_win32_values():
    assert (winerror.ERROR_FILE_NOT_FOUND, winerror.ERROR_BROKEN_PIPE, winerror.ERROR_SEM_TIMEOUT,
            winerror.ERROR_PIPE_BUSY, winerror.ERROR_NO_DATA, winerror.ERROR_MORE_DATA,
            winerror.ERROR_IO_PENDING) == (2, 109, 121, 231, 232, 234, 997)
    assert (win32con.PIPE_TYPE_MESSAGE, win32con.PIPE_READMODE_MESSAGE, win32con.PIPE_ACCESS_DUPLEX,
            win32con.PIPE_UNLIMITED_INSTANCES, win32con.WAIT_TIMEOUT, win32con.WAIT_ABANDONED,
            win32con.INFINITE, win32con.CF_UNICODETEXT, win32con.WM_COPYDATA) == (
        4, 2, 3, 255, 258, 128, 0xFFFFFFFF, 13, 0x4A)


def test_events_semaphores_and_waits(name_factory):
    ev = win32event.CreateEvent(None, 0, 0, name_factory())
    sem = win32event.CreateSemaphore(None, 1, 3, name_factory())
    assert win32event.WaitForSingleObject(ev, 0) == win32event.WAIT_TIMEOUT
    assert win32event.WaitForMultipleObjects([ev, sem], 0, 1000) == win32event.WAIT_OBJECT_0 + 1
    assert win32event.ReleaseSemaphore(sem, 2) == 0  # the previous count
    with pytest.raises(pywintypes.error) as info:
        win32event.ReleaseSemaphore(sem, 5)
    assert info.value.winerror == winerror.ERROR_TOO_MANY_POSTS
    # wait-all takes nothing unless it can take everything
    assert win32event.WaitForMultipleObjects([ev, sem], 1, 50) == win32event.WAIT_TIMEOUT
    assert win32event.ReleaseSemaphore(sem, 1) == 2
    win32event.SetEvent(ev)
    assert win32event.WaitForMultipleObjects([ev, sem], 1, 1000) == win32event.WAIT_OBJECT_0
    assert win32event.WaitForSingleObject(ev, 0) == win32event.WAIT_TIMEOUT  # auto-reset consumed
    timer = win32event.CreateWaitableTimer(None, 1, None)
    win32event.SetWaitableTimer(timer, -100_000, 0, None, None, 0)  # 10 ms, relative
    assert win32event.MsgWaitForMultipleObjects([timer], 0, 5000, win32event.QS_ALLINPUT) == 0
    for h in (ev, sem, timer):
        h.Close()


def test_event_and_mutex_across_processes(spawn, name):
    ev = win32event.CreateEvent(None, 1, 0, name + "-ev")
    mx = win32event.CreateMutex(None, 0, name + "-mx")  # our handle keeps the mutex alive
    child = spawn("""
        import sys, interproc.pywin32 as p
        p.install()
        import win32event
        ev = win32event.OpenEvent(win32event.EVENT_ALL_ACCESS, 0, sys.argv[1] + "-ev")
        mx = win32event.CreateMutex(None, 1, sys.argv[1] + "-mx")   # owned, then we die holding it
        win32event.SetEvent(ev)
        print("HOLDING", flush=True)
        import os; os._exit(0)
    """, name)
    assert win32event.WaitForSingleObject(ev, 20000) == win32event.WAIT_OBJECT_0
    wait_for_line(child, "HOLDING")
    child.wait(10)
    assert win32event.WaitForSingleObject(mx, 10000) == win32event.WAIT_ABANDONED
    win32event.ReleaseMutex(mx)
    with pytest.raises(pywintypes.error) as info:
        win32event.ReleaseMutex(mx)
    assert info.value.winerror == winerror.ERROR_NOT_OWNER
    ev.Close(), mx.Close()


def test_message_pipe_more_data_peek_and_errors(name):
    srv = _server_pipe(name)
    assert win32pipe.ConnectNamedPipe.__name__ == "ConnectNamedPipe"
    got = {}

    def serve():
        win32pipe.ConnectNamedPipe(srv, None)
        got["first"] = win32file.ReadFile(srv, 4)
        got["rest"] = win32file.ReadFile(srv, 100)
        win32file.WriteFile(srv, b"0123456789")

    t = threading.Thread(target=serve)
    t.start()
    cli = win32file.CreateFile(_pipe(name), win32con.GENERIC_READ | win32con.GENERIC_WRITE, 0, None,
                               win32con.OPEN_EXISTING, 0, None)
    win32pipe.SetNamedPipeHandleState(cli, win32pipe.PIPE_READMODE_MESSAGE, None, None)
    assert win32file.WriteFile(cli, b"hello world") == (0, 11)
    t.join(10)
    assert got == {"first": (winerror.ERROR_MORE_DATA, b"hell"), "rest": (0, b"o world")}
    for _ in range(200):
        data, avail, left = win32pipe.PeekNamedPipe(cli, 4)
        if avail:
            break
        win32api.Sleep(10)
    assert (data, avail, left) == (b"0123", 10, 6)
    buf = win32file.AllocateReadBuffer(64)
    hr, view = win32file.ReadFile(cli, buf)
    assert (hr, bytes(view)) == (0, b"0123456789")
    win32pipe.DisconnectNamedPipe(srv)
    with pytest.raises(pywintypes.error) as info:
        win32file.ReadFile(cli, 10)
    assert info.value.winerror == winerror.ERROR_BROKEN_PIPE
    with pytest.raises(pywintypes.error) as info:
        win32file.WriteFile(cli, b"x")
    assert info.value.winerror == winerror.ERROR_NO_DATA
    cli.Close(), srv.Close()
    with pytest.raises(pywintypes.error) as info:
        win32file.CreateFile(_pipe(name + "-none"), win32con.GENERIC_READ, 0, None, win32con.OPEN_EXISTING, 0, None)
    assert info.value.winerror == winerror.ERROR_FILE_NOT_FOUND


def test_nowait_pipe(name):
    srv = _server_pipe(name, mode=win32con.PIPE_TYPE_MESSAGE | win32con.PIPE_READMODE_MESSAGE | win32con.PIPE_NOWAIT)
    with pytest.raises(pywintypes.error) as info:
        win32pipe.ConnectNamedPipe(srv, None)
    assert info.value.winerror == winerror.ERROR_PIPE_LISTENING
    srv.Close()


def test_docs_example_runs(tmp_path):
    import re

    text = open(os.path.join(os.path.dirname(__file__), "..", "docs", "pywin32.md")).read()
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        out = subprocess.run([sys.executable, "-c", block], env=ENV, cwd=tmp_path, capture_output=True,
                             text=True, timeout=40)
        assert out.returncode == 0, out.stderr
        assert "server got b'hello from the client'" in out.stdout
        assert "client got (234, b'answer') (0, b': 42')" in out.stdout


def test_instance_limit_and_busy(name):
    srv = _server_pipe(name, max_instances=1)
    with pytest.raises(pywintypes.error) as info:
        _server_pipe(name, max_instances=1)
    assert info.value.winerror == winerror.ERROR_PIPE_BUSY
    with pytest.raises(pywintypes.error) as info:  # nobody in ConnectNamedPipe
        win32file.CreateFile(_pipe(name), win32con.GENERIC_READ, 0, None, win32con.OPEN_EXISTING, 0, None)
    assert info.value.winerror == winerror.ERROR_PIPE_BUSY
    srv.Close()


def test_overlapped_connect_and_read(name):
    srv = _server_pipe(name)
    ol = pywintypes.OVERLAPPED()
    ol.hEvent = win32event.CreateEvent(None, 1, 0, None)
    assert win32pipe.ConnectNamedPipe(srv, ol) == winerror.ERROR_IO_PENDING
    with pytest.raises(pywintypes.error) as info:
        win32file.GetOverlappedResult(srv, ol, 0)
    assert info.value.winerror == winerror.ERROR_IO_INCOMPLETE
    ch = NamedPipe.connect(name, timeout=10)  # a native interproc client
    assert win32event.WaitForSingleObject(ol.hEvent, 10000) == win32event.WAIT_OBJECT_0
    assert win32file.GetOverlappedResult(srv, ol, 1) == 0
    buf = win32file.AllocateReadBuffer(5)
    hr, _ = win32file.ReadFile(srv, buf, ol)
    assert hr == winerror.ERROR_IO_PENDING
    ch.write(b"abcdefgh")
    with pytest.raises(pywintypes.error) as info:  # the message did not fit: the Win32 result
        win32file.GetOverlappedResult(srv, ol, 1)
    assert info.value.winerror == winerror.ERROR_MORE_DATA and bytes(buf) == b"abcde"
    assert win32file.ReadFile(srv, 10) == (0, b"fgh")
    ch.close(), srv.Close(), ol.hEvent.Close()


def test_face_client_of_native_server_in_another_process(spawn, name):
    child = spawn("""
        import sys
        from interproc.pipes import NamedPipe
        srv = NamedPipe.serve(sys.argv[1], mode="message")
        print("READY", flush=True)
        for _ in range(2):
            ch = srv.accept(timeout=20)
            ch.send(b"native:" + ch.recv(timeout=20))
            ch.recv(timeout=20) if False else None
            ch.close()
        srv.close()
    """, name)
    wait_for_line(child, "READY")
    assert win32pipe.CallNamedPipe(_pipe(name), b"one", 5, win32pipe.NMPWAIT_WAIT_FOREVER) == b"nativ"
    h = win32file.CreateFile(_pipe(name), win32con.GENERIC_READ | win32con.GENERIC_WRITE, 0, None,
                             win32con.OPEN_EXISTING, 0, None)
    win32pipe.SetNamedPipeHandleState(h, win32pipe.PIPE_READMODE_MESSAGE, None, None)
    assert win32pipe.TransactNamedPipe(h, b"two", 100) == (0, b"native:two")
    h.Close()
    child.wait(20)
    assert child.returncode == 0, child.stderr.read()


def test_anonymous_pipe():
    r, w = win32pipe.CreatePipe(None, 0)
    assert win32file.WriteFile(w, b"data") == (0, 4)
    assert win32file.ReadFile(r, 10) == (0, b"data")
    w.Close()
    with pytest.raises(pywintypes.error) as info:
        win32file.ReadFile(r, 10)
    assert info.value.winerror == winerror.ERROR_BROKEN_PIPE
    r.Close()


def test_mailslot_face_and_native(spawn, name):
    slot = win32file.CreateMailslot("\\\\.\\mailslot\\" + name, 0, 50, None)
    assert win32file.GetMailslotInfo(slot)[1:] == (win32con.MAILSLOT_NO_MESSAGE, 0, 50)
    with pytest.raises(pywintypes.error) as info:
        win32file.ReadFile(slot, 100)
    assert info.value.winerror == winerror.ERROR_SEM_TIMEOUT
    spawn("""
        import sys
        from interproc.mailslot import Mailslot
        Mailslot.write(sys.argv[1], b"from native")
    """, name).wait(20)
    w = win32file.CreateFile("\\\\.\\mailslot\\" + name, win32con.GENERIC_WRITE, win32con.FILE_SHARE_READ,
                             None, win32con.OPEN_EXISTING, 0, None)
    assert win32file.WriteFile(w, b"from face") == (0, 9)
    win32file.SetMailslotInfo(slot, win32con.MAILSLOT_WAIT_FOREVER)
    assert win32file.GetMailslotInfo(slot)[2] == 2
    assert win32file.ReadFile(slot, 100) == (0, b"from native")
    assert win32file.ReadFile(slot, 100) == (0, b"from face")
    w.Close(), slot.Close()
    native = Mailslot.create(name)
    h = win32file.CreateFile("\\\\.\\mailslot\\" + name, win32con.GENERIC_WRITE, 0, None, 3, 0, None)
    win32file.WriteFile(h, b"to native")
    assert native.read(timeout=5) == b"to native"
    h.Close(), native.close()


def test_mmapfile_across_processes(spawn, name):
    m = mmapfile.mmapfile(None, name, 4096)
    m.write(b"hello")
    out = spawn.run("""
        import sys, interproc.pywin32 as p
        p.install()
        import mmapfile
        m = mmapfile.mmapfile(File=None, Name=sys.argv[1], MaximumSize=0)
        print(m.size(), m.read(5).decode())
        m.seek(5); m.write(b"!"); m.write_byte(b"?")
        m.close()
    """, name)
    assert out.split() == ["4096", "hello"]
    m.seek(0)
    assert m.read(7) == b"hello!?" and m.tell() == 7 and m.read_byte() == b"\0"
    with pytest.raises(ValueError):
        m.seek(5000)
    m.close()


def test_pipe_service_demo_runs_unchanged(name):
    server = subprocess.Popen(FACE + [DEMO, "server", name], env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        wait_for_line(server, "READY")
        client = subprocess.run(FACE + [DEMO, "client", name, "3", "8"], env=ENV, capture_output=True,
                                text=True, timeout=50)
        assert client.returncode == 0, client.stderr
        assert "FAILURES 0" in client.stdout and "DONE 24" in client.stdout
        out, err = server.communicate(timeout=20)
        assert "SERVED 24" in out, err
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()


def test_native_client_in_another_process_reaches_a_face_server(spawn, name):
    srv = _server_pipe(name, max_instances=2)
    child = spawn("""
        import sys
        from interproc.pipes import NamedPipe
        ch = NamedPipe.connect(sys.argv[1], timeout=20)
        ch.send(b"native hello " * 50)
        print("REPLY", ch.recv(timeout=20).decode(), flush=True)
        ch.close()
    """, name)
    assert win32pipe.ConnectNamedPipe(srv, None) == 0
    assert win32pipe.GetNamedPipeClientProcessId(srv) == child.pid
    data = b""
    while True:
        hr, part = win32file.ReadFile(srv, 100)
        data += part
        if hr != winerror.ERROR_MORE_DATA:
            break
    assert data == b"native hello " * 50
    win32file.WriteFile(srv, b"face reply")
    assert wait_for_line(child, "REPLY").split() == ["REPLY", "face", "reply"]
    child.wait(10)
    win32pipe.DisconnectNamedPipe(srv)
    srv.Close()


def test_closing_an_instance_aborts_its_pending_connect(name):
    first = _server_pipe(name, max_instances=2)
    second = _server_pipe(name, max_instances=2)
    ol = pywintypes.OVERLAPPED()
    ol.hEvent = win32event.CreateEvent(None, 1, 0, None)
    assert win32pipe.ConnectNamedPipe(first, ol) == winerror.ERROR_IO_PENDING
    first.Close()  # its pending connect ends: it must not take the next client
    assert win32event.WaitForSingleObject(ol.hEvent, 10000) == win32event.WAIT_OBJECT_0
    with pytest.raises(pywintypes.error) as info:
        win32file.GetOverlappedResult(second, ol, 1)
    assert info.value.winerror == winerror.ERROR_OPERATION_ABORTED
    got = {}
    t = threading.Thread(target=lambda: got.update(rc=win32pipe.ConnectNamedPipe(second, None)))
    t.start()
    ch = NamedPipe.connect(name, timeout=10)
    t.join(10)
    assert got == {"rc": 0}
    ch.write(b"to the live instance")
    assert win32file.ReadFile(second, 100) == (0, b"to the live instance")
    ch.close(), second.Close(), ol.hEvent.Close()
