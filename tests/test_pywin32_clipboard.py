"""win32clipboard of the pywin32 face on a real X server (Xvfb), checked with xclip."""

from __future__ import annotations

import struct

import pytest

from clipboard_xvfb import owner_pids, wait_gone, x11, xclip, xvfb  # noqa: F401
from interproc.pywin32 import pywintypes, win32clipboard as wc, win32con, winerror

pytestmark = pytest.mark.display


def _dib(width=2, height=2):
    header = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    row = b"\x00\x00\xff" * width + b"\x00" * ((4 - 3 * width % 4) % 4)
    return header + row * height


def test_text_set_by_face_is_seen_by_xclip_and_back(xclip):
    wc.OpenClipboard()
    wc.EmptyClipboard()
    wc.SetClipboardText("grüße from Windows", win32con.CF_UNICODETEXT)
    wc.CloseClipboard()
    assert xclip.out().decode() == "grüße from Windows"
    assert xclip.out("text/plain").decode() == "grüße from Windows"
    wc.OpenClipboard()
    try:
        assert wc.GetClipboardData(win32con.CF_UNICODETEXT) == "grüße from Windows"
        assert wc.GetClipboardData(win32con.CF_TEXT) == "grüße from Windows".encode()
        handle = wc.GetClipboardDataHandle(win32con.CF_TEXT)
        assert wc.GetGlobalMemory(handle) == "grüße from Windows".encode() + b"\0"
        uhandle = wc.GetClipboardDataHandle(win32con.CF_UNICODETEXT)
        assert wc.GetGlobalMemory(uhandle) == "grüße from Windows".encode("utf-16-le") + b"\0\0"
        assert wc.IsClipboardFormatAvailable(win32con.CF_TEXT)
        assert not wc.IsClipboardFormatAvailable(win32con.CF_DIB)
        with pytest.raises(TypeError):
            wc.GetClipboardData(win32con.CF_DIB)
    finally:
        wc.CloseClipboard()


def test_xclip_text_and_enumeration(xclip):
    xclip.copy("from xclip".encode())
    wc.OpenClipboard()
    try:
        found, fmt = [], 0
        while True:
            fmt = wc.EnumClipboardFormats(fmt)
            if not fmt:
                break
            found.append(fmt)
        assert win32con.CF_UNICODETEXT in found and win32con.CF_TEXT in found
        assert wc.GetClipboardData() == "from xclip"
    finally:
        wc.CloseClipboard()


def test_dib_and_registered_formats(xclip):
    png = b"\x89PNG\r\n\x1a\n" + b"fake image body"
    cf_png = wc.RegisterClipboardFormat("PNG")
    custom = wc.RegisterClipboardFormat("application/x-my-app")
    assert 0xC000 <= cf_png <= 0xFFFF and wc.RegisterClipboardFormat("PNG") == cf_png
    assert wc.GetClipboardFormatName(custom) == "application/x-my-app"
    wc.OpenClipboard()
    wc.EmptyClipboard()
    wc.SetClipboardData(win32con.CF_DIB, _dib())
    wc.SetClipboardData(cf_png, png)
    wc.SetClipboardData(custom, b"\x01\x02")
    wc.CloseClipboard()
    bmp = xclip.out("image/bmp")
    assert bmp[:2] == b"BM" and bmp[14:] == _dib() and struct.unpack_from("<I", bmp, 10)[0] == 54
    assert xclip.out("image/png") == png
    assert xclip.out("application/x-my-app") == b"\x01\x02"
    wc.OpenClipboard()
    try:
        assert wc.GetClipboardData(win32con.CF_DIB) == _dib()
        assert wc.GetClipboardData(custom) == b"\x01\x02"
    finally:
        wc.CloseClipboard()


def test_not_open_is_an_error(x11):
    with pytest.raises(pywintypes.error) as info:
        wc.GetClipboardData(win32con.CF_TEXT)
    assert info.value.winerror == winerror.ERROR_CLIPBOARD_NOT_OPEN
