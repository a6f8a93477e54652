"""win32gui (window messages, WM_COPYDATA) and dde of the pywin32 face: programs
written for pywin32 run unchanged in two processes, and talk to native interproc."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import SRC, wait_for_line
from interproc import dde as native_dde, messages
from interproc.pywin32 import dde, pywintypes, win32con, win32gui, winerror

ENV = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
DATA = os.path.join(os.path.dirname(__file__), "data")
FACE = [sys.executable, "-m", "interproc.pywin32"]


@pytest.fixture(autouse=True)
def _atom_table():
    """RegisterWindowMessage makes the user's atom table (it lasts the login
    session); a test that made it removes it, as tests/test_messages.py does."""
    from interproc._messages._names import TABLE_NAME
    from interproc._naming import segment_name

    path = os.path.join("/dev/shm", segment_name("shm", TABLE_NAME, "user"))
    existed = os.path.exists(path)
    yield
    if not existed:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _run_pair(script, server_args, client_args):
    server = subprocess.Popen(FACE + [os.path.join(DATA, script), *server_args], env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_line(server, "READY")
        client = subprocess.run(FACE + [os.path.join(DATA, script), *client_args], env=ENV,
                                capture_output=True, text=True, timeout=30)
        assert client.returncode == 0, client.stderr
        out, err = server.communicate(timeout=20)
        assert server.returncode == 0, err
        return client.stdout, out
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()


def test_copydata_programs_run_unchanged(name):
    sent, received = _run_pair("pywin32_copydata.py", ["receive", name], ["send", name, "hello window"])
    assert "COPYDATA-RESULT 12" in sent and "PING-RESULT 5" in sent
    assert "COPYDATA 42 hello window" in received and "BYE" in received


def test_face_sends_to_a_native_window(spawn, name):
    child = spawn("""
        import sys
        from interproc import messages
        win = messages.Window(sys.argv[1])
        win.handler(messages.WM_COPYDATA)(lambda m: len(m.data) * 1000 + m.tag)
        win.handler(messages.WM_USER + 5)(lambda m: m.wparam * m.lparam)
        win.handler(messages.WM_USER + 6)(lambda m: win.quit())
        print("READY", flush=True)
        win.run(); win.close()
    """, name)
    wait_for_line(child, "READY")
    hwnd = win32gui.FindWindow(None, name)
    assert hwnd and win32gui.FindWindow(None, name + "-none") == 0
    assert win32gui.SendMessage(hwnd, win32con.WM_USER + 5, 6, 7) == 42
    import array
    import struct

    payload = array.array("B", b"abcd")
    cds = struct.pack("PLP", 9, len(payload), payload.buffer_info()[0])
    assert win32gui.SendMessage(hwnd, win32con.WM_COPYDATA, 0, cds) == 4009  # a buffer works too
    win32gui.PostMessage(hwnd, win32con.WM_USER + 6, 0, 0)
    child.wait(20)
    with pytest.raises(pywintypes.error) as info:
        win32gui.SendMessage(hwnd, win32con.WM_USER + 5, 1, 1)
    assert info.value.winerror == winerror.ERROR_INVALID_WINDOW_HANDLE
    assert win32gui.RegisterWindowMessage("Face.Test") == messages.register_message("Face.Test")


def test_send_message_timeout_to_a_window_that_does_not_pump(name):
    win = messages.Window(name)  # never pumped
    try:
        hwnd = win32gui.FindWindow(None, name)
        with pytest.raises(pywintypes.error) as info:
            win32gui.SendMessageTimeout(hwnd, win32con.WM_USER, 0, 0, win32con.SMTO_NORMAL, 200)
        assert info.value.winerror == winerror.ERROR_TIMEOUT
    finally:
        win.close()


def test_dde_programs_run_unchanged(name):
    client, server = _run_pair("pywin32_dde.py", ["server", name], ["client", name])
    assert client.split("\n")[:3] == ["REQUEST 101.5", "REQUEST 99.0", "NO-SUCH-SERVICE"]
    assert "POKE ACME 99.0" in server and "EXEC Quit" in server


def test_face_dde_server_with_a_native_client(spawn, name):
    srv = dde.CreateServer()
    topic = dde.CreateTopic("Stocks")
    item = dde.CreateStringItem("ACME")
    item.SetData("10")
    topic.AddItem(item)
    srv.AddTopic(topic)
    srv.Create(name)
    try:
        child = spawn("""
            import sys, threading
            from interproc import dde
            conv = dde.connect(sys.argv[1], "Stocks", timeout=5)
            print("COLD", conv.request("ACME"), flush=True)
            got = threading.Event()
            link = conv.advise("ACME", hot=True, callback=lambda i, v: v == "11" and got.set())
            print("LINKED", flush=True)
            print("HOT", got.wait(10), flush=True)
            link.close(); conv.close()
        """, name)
        assert wait_for_line(child, "COLD").split() == ["COLD", "10"]
        wait_for_line(child, "LINKED")
        item.SetData("11")  # a hot link of a native client hears the face's SetData
        assert wait_for_line(child, "HOT").split() == ["HOT", "True"]
        child.wait(20)
    finally:
        srv.Destroy()
    with pytest.raises(dde.error):
        dde.CreateConversation(None).ConnectTo(name, "Stocks")
    assert native_dde  # the native module is the one underneath
