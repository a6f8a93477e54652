"""``win32clipboard`` on interproc.clipboard (X11, Wayland, macOS).

Win32 formats map to the MIME formats other Linux programs use: CF_UNICODETEXT,
CF_TEXT and CF_OEMTEXT are ``text/plain`` (UTF-8), CF_DIB is ``image/bmp``
(the DIB with a BITMAPFILEHEADER in front), the registered ``"PNG"`` is
``image/png`` and ``"HTML Format"`` is ``text/html``; any other registered
name is used as the format name itself.  Data set between OpenClipboard and
CloseClipboard is published on CloseClipboard (one ownership change, as other
programs see a Win32 clipboard change once).
"""

from __future__ import annotations

import struct
import threading
from typing import Any

from .. import clipboard as _cb
from .._errors import NotFound
from ._core import HANDLE, _table, error, raise_error  # noqa: F401 - error: win32clipboard.error
from .win32con import (  # noqa: F401 - pywin32's win32clipboard exports these
    CF_BITMAP as CF_BITMAP,
    CF_DIB as CF_DIB,
    CF_DIBV5 as CF_DIBV5,
    CF_HDROP as CF_HDROP,
    CF_LOCALE as CF_LOCALE,
    CF_OEMTEXT as CF_OEMTEXT,
    CF_TEXT as CF_TEXT,
    CF_UNICODETEXT as CF_UNICODETEXT,
)
from .winerror import ERROR_ACCESS_DENIED, ERROR_CLIPBOARD_NOT_OPEN, ERROR_INVALID_HANDLE


_TEXT_IDS = (CF_UNICODETEXT, CF_TEXT, CF_OEMTEXT)
_MIME_OF_NAME = {"PNG": "image/png", "HTML Format": "text/html", "image/png": "image/png"}
_STANDARD = {CF_TEXT: "CF_TEXT", CF_OEMTEXT: "CF_OEMTEXT", CF_UNICODETEXT: "CF_UNICODETEXT", CF_DIB: "CF_DIB"}

_state = threading.local()
_lock = threading.Lock()
_open_by: list[int | None] = [None]  # the thread that has the clipboard open
_names: dict[int, str] = {}  # registered id -> name
_ids: dict[str, int] = {}


class _Global:
    """A global memory block (what GetClipboardDataHandle hands out)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def close(self) -> None:
        pass


def _check_open(funcname: str) -> None:
    if _open_by[0] != threading.get_ident():
        raise_error(ERROR_CLIPBOARD_NOT_OPEN, funcname)


def OpenClipboard(hWndNewOwner: Any = None) -> None:  # noqa: N802,N803
    """Open for this thread; ERROR_ACCESS_DENIED while another thread of this process has it."""
    with _lock:
        if _open_by[0] not in (None, threading.get_ident()):
            raise_error(ERROR_ACCESS_DENIED, "OpenClipboard", "another thread has the clipboard open")
        _open_by[0] = threading.get_ident()
    _state.pending = None  # formats set in this session (None: nothing set)


def CloseClipboard() -> None:  # noqa: N802
    """Close; what SetClipboardData put in this session becomes visible to every program."""
    _check_open("CloseClipboard")
    pending = getattr(_state, "pending", None)
    _state.pending = None
    with _lock:
        _open_by[0] = None
    if pending is not None:
        if pending:
            _cb.set(pending)
        else:
            _cb.clear()


def EmptyClipboard() -> None:  # noqa: N802
    _check_open("EmptyClipboard")
    _state.pending = {}


def RegisterClipboardFormat(name: str) -> int:  # noqa: N802
    """An id in 0xC000..0xFFFF for ``name``, the same in every process on this display."""
    with _lock:
        if name in _ids:
            return _ids[name]
    try:
        base = _cb.register_format(_mime(name) if name in _MIME_OF_NAME else name)
    except Exception:
        base = sum(name.encode()) * 131  # no clipboard backend: a stable local id
    fid = 0xC000 + base % 0x4000
    with _lock:
        _ids[name], _names[fid] = fid, name
    return fid


def GetClipboardFormatName(format: int) -> str:  # noqa: A002,N802
    """The name of a registered format (standard formats have none: ERROR_INVALID_PARAMETER... as Win32)."""
    name = _names.get(format)
    if name is None:
        raise_error(87, "GetClipboardFormatName", f"format {format} is not a registered format")
    return name


def _mime(name: str) -> str:
    return _MIME_OF_NAME.get(name, name)


def _mime_of_id(fid: int) -> str | None:
    if fid in _TEXT_IDS:
        return _cb.TEXT
    if fid == CF_DIB:
        return "image/bmp"
    name = _names.get(fid)
    return _mime(name) if name else None


def _ids_of_mime(mime: str) -> list[int]:
    if mime in (_cb.TEXT, "text/plain;charset=utf-8", "UTF8_STRING"):
        return list(_TEXT_IDS)
    if mime == "image/bmp":
        return [CF_DIB]
    for name, m in _MIME_OF_NAME.items():
        if m == mime and name != m:
            return [RegisterClipboardFormat(name)]
    return [RegisterClipboardFormat(mime)]


def _encode(fid: int, data: Any) -> bytes:
    """pywin32's argument for ``fid`` as the bytes interproc.clipboard stores."""
    if fid in _TEXT_IDS:
        if isinstance(data, str):
            text = data
        else:
            text = bytes(memoryview(data)).split(b"\0", 1)[0].decode("utf-8", "replace")
        return text.split("\0", 1)[0].encode("utf-8")
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(memoryview(data))
    if fid == CF_DIB:
        return _dib_to_bmp(raw)
    return raw


def _dib_to_bmp(dib: bytes) -> bytes:
    if len(dib) < 40:
        raise ValueError(f"CF_DIB data must start with a BITMAPINFOHEADER (40 bytes), got {len(dib)} bytes")
    header_size, _w, _h, _planes, bits, compression, _size, _x, _y, used = struct.unpack_from("<IiiHHIIiiI", dib)
    colors = used or (1 << bits if bits <= 8 else 0)
    masks = 12 if compression == 3 and header_size == 40 else 0
    offset = 14 + header_size + masks + 4 * colors
    return b"BM" + struct.pack("<IHHI", 14 + len(dib), 0, 0, offset) + dib


def _bmp_to_dib(bmp: bytes) -> bytes:
    return bmp[14:] if bmp[:2] == b"BM" else bmp


def SetClipboardData(format: int, hMem: Any) -> int:  # noqa: A002,N802,N803
    """Put ``hMem`` (str for CF_UNICODETEXT, bytes or a buffer otherwise) under
    ``format``; returns the handle of its global block."""
    _check_open("SetClipboardData")
    mime = _mime_of_id(format)
    if mime is None:
        raise_error(87, "SetClipboardData", f"format {format} is neither standard nor registered here")
    data = _encode(format, hMem)
    if _state.pending is None:
        _state.pending = {}
    _state.pending[mime] = data
    return int(HANDLE._new(_Global(_block(format, data))).Detach())


def SetClipboardText(text: Any, format: int = CF_TEXT) -> int:  # noqa: A002,N802
    return SetClipboardData(format, text)


def _current(mime: str) -> bytes | None:
    pending: dict[str, bytes] | None = getattr(_state, "pending", None)
    if pending is not None:
        return pending.get(mime)
    try:
        return bytes(_cb.get(mime))
    except NotFound:
        return None


def _mimes() -> list[str]:
    pending = getattr(_state, "pending", None)
    if pending is not None:
        return list(pending)
    try:
        return _cb.formats()
    except Exception:
        return []


def GetClipboardData(format: int = CF_UNICODETEXT) -> Any:  # noqa: A002,N802
    """CF_UNICODETEXT -> str, CF_TEXT/CF_OEMTEXT -> bytes (no NUL), others -> bytes.
    ``TypeError`` if the format is not on the clipboard, as pywin32."""
    _check_open("GetClipboardData")
    mime = _mime_of_id(format)
    data = _current(mime) if mime else None
    if data is None:
        raise TypeError("Specified clipboard format is not available")
    if format == CF_UNICODETEXT:
        return data.decode("utf-8", "replace")
    if format == CF_DIB:
        return _bmp_to_dib(data)
    return data


def _block(fid: int, data: bytes) -> bytes:
    """The global memory block Win32 would hold: text NUL-terminated, UTF-16 for CF_UNICODETEXT."""
    if fid == CF_UNICODETEXT:
        return data.decode("utf-8", "replace").encode("utf-16-le") + b"\0\0"
    if fid in (CF_TEXT, CF_OEMTEXT):
        return data + b"\0"
    if fid == CF_DIB:
        return _bmp_to_dib(data)
    return data


def GetClipboardDataHandle(format: int) -> int:  # noqa: A002,N802
    _check_open("GetClipboardDataHandle")
    mime = _mime_of_id(format)
    data = _current(mime) if mime else None
    if data is None:
        raise TypeError("Specified clipboard format is not available")
    return int(HANDLE._new(_Global(_block(format, data))).Detach())


def GetGlobalMemory(hglobal: int) -> bytes:  # noqa: N802
    obj = _table.get(int(hglobal))
    if not isinstance(obj, _Global):
        raise_error(ERROR_INVALID_HANDLE, "GetGlobalMemory")
    return obj.data


def EnumClipboardFormats(format: int = 0) -> int:  # noqa: A002,N802
    """The format after ``format`` (0 = the first); 0 at the end."""
    _check_open("EnumClipboardFormats")
    order: list[int] = []
    for mime in _mimes():
        for fid in _ids_of_mime(mime):
            if fid not in order:
                order.append(fid)
    if format == 0:
        return order[0] if order else 0
    if format in order:
        i = order.index(format) + 1
        return order[i] if i < len(order) else 0
    return 0


def CountClipboardFormats() -> int:  # noqa: N802
    return len({fid for mime in _mimes() for fid in _ids_of_mime(mime)})


def IsClipboardFormatAvailable(format: int) -> int:  # noqa: A002,N802
    mime = _mime_of_id(format)
    return int(mime is not None and mime in _mimes())


def GetClipboardOwner() -> int:  # noqa: N802
    """No windows on Linux: 0 (no owner window), as Win32 says for a window-less owner."""
    return 0
