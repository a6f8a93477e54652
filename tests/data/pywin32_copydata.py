# WM_COPYDATA between two programs, the way pywin32 programs do it on Windows:
# the receiver registers a window class and pumps messages, the sender finds the
# window and passes a COPYDATASTRUCT built with array and struct.
#
#   pywin32_copydata.py receive WINDOW     prints each message, quits on WM_USER+1
#   pywin32_copydata.py send WINDOW TEXT
import array
import ctypes
import struct
import sys

import win32api
import win32con
import win32gui


class COPYDATASTRUCT(ctypes.Structure):
    _fields_ = [("dwData", ctypes.c_size_t), ("cbData", ctypes.c_uint32),
                ("lpData", ctypes.c_void_p)]


def receive(title):
    ping = win32gui.RegisterWindowMessage("PyWin32Face.Ping")

    def wndproc(hwnd, msg, wparam, lparam):
        if msg == win32con.WM_COPYDATA:
            cds = ctypes.cast(lparam, ctypes.POINTER(COPYDATASTRUCT)).contents
            text = ctypes.string_at(cds.lpData, cds.cbData).decode()
            print("COPYDATA", cds.dwData, text, flush=True)
            return len(text)
        if msg == ping:
            return wparam + lparam
        if msg == win32con.WM_USER + 1:
            win32gui.PostQuitMessage(0)
            return 0
        return 0

    wc = win32gui.WNDCLASS()
    wc.lpszClassName = "PyWin32FaceReceiver"
    wc.lpfnWndProc = wndproc
    atom = win32gui.RegisterClass(wc)
    hwnd = win32gui.CreateWindow(atom, title, 0, 0, 0, 0, 0, 0, 0, win32api.GetModuleHandle(None), None)
    print("READY", flush=True)
    win32gui.PumpMessages()
    win32gui.DestroyWindow(hwnd)
    print("BYE", flush=True)


def send(title, text):
    hwnd = win32gui.FindWindow(None, title)
    if not hwnd:
        sys.exit("no window " + title)
    payload = array.array("B", text.encode())
    address, length = payload.buffer_info()
    cds = array.array("B", struct.pack("PLP", 42, length, address))
    result = win32gui.SendMessage(hwnd, win32con.WM_COPYDATA, 0, cds.buffer_info()[0])
    print("COPYDATA-RESULT", result)
    ping = win32gui.RegisterWindowMessage("PyWin32Face.Ping")
    print("PING-RESULT", win32gui.SendMessageTimeout(hwnd, ping, 2, 3, win32con.SMTO_ABORTIFHUNG, 5000)[1])
    win32api.PostMessage(hwnd, win32con.WM_USER + 1, 0, 0)


if __name__ == "__main__":
    (receive if sys.argv[1] == "receive" else send)(*sys.argv[2:])
