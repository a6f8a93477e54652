"""``mmapfile``: named file mappings (pagefile-backed) on interproc.shm.SharedMemory.

``mmapfile(File=None, Name="x", MaximumSize=n)`` creates or opens the mapping
``x``; one opened by name keeps its creator's size.  Win32 lifetime: the
mapping goes when its last handle closes.
"""

from __future__ import annotations

from typing import Any

from .._errors import NotFound
from ..shm import SharedMemory
from ._core import error, raise_error, set_last_error
from .winerror import (
    ERROR_ACCESS_DENIED,
    ERROR_ALREADY_EXISTS,
    ERROR_FILE_NOT_FOUND,
    ERROR_INVALID_PARAMETER,
    ERROR_NOT_SUPPORTED,
)

__all__ = ["error", "mmapfile"]


class _MMapFile:
    def __init__(self, name: str, size: int) -> None:
        if size:
            self._shm = SharedMemory.create_or_open(name, size)
        else:
            try:
                self._shm = SharedMemory.open(name)
            except NotFound:
                raise_error(ERROR_FILE_NOT_FOUND, "OpenFileMapping", f"no mapping named {name!r}")
        set_last_error(0 if self._shm.created else ERROR_ALREADY_EXISTS)
        self.name, self._pos = name, 0

    def _buf(self) -> memoryview:
        if self._shm.closed:
            raise ValueError("mmapfile is closed")
        return self._shm.buf

    def size(self) -> int:
        return self._shm.size

    def tell(self) -> int:
        return self._pos

    def seek(self, dist: int, how: int = 0) -> None:
        base = (0, self._pos, self.size())[how]
        pos = base + dist
        if not 0 <= pos <= self.size():
            raise ValueError(f"seek to {pos} is outside the mapping (0..{self.size()})")
        self._pos = pos

    def read(self, num_bytes: int) -> bytes:
        end = min(self.size(), self._pos + num_bytes)
        data = bytes(self._buf()[self._pos:end])
        self._pos = end
        return data

    def read_byte(self) -> bytes:
        if self._pos >= self.size():
            raise ValueError("read_byte past the end of the mapping")
        return self.read(1)

    def write(self, data: Any) -> None:
        data = bytes(memoryview(data)) if not isinstance(data, str) else data.encode()
        if self._pos + len(data) > self.size():
            raise ValueError(f"data ({len(data)} bytes at {self._pos}) out of range for a {self.size()}-byte mapping")
        self._buf()[self._pos:self._pos + len(data)] = data
        self._pos += len(data)

    def write_byte(self, char: Any) -> None:
        self.write(char if isinstance(char, (bytes, bytearray)) else bytes([char]))

    def flush(self, offset: int = 0, size: int = 0) -> None:
        """Nothing to do: a pagefile-backed mapping has no file to flush to."""
        self._buf()

    def resize(self, MaximumSize: int, FileOffset: int = 0, NumberOfBytesToMap: int = 0) -> None:  # noqa: N803
        """Win32 cannot grow a named pagefile mapping either: only the same size is accepted."""
        if MaximumSize != self.size():
            raise_error(ERROR_NOT_SUPPORTED, "resize", "a named mapping keeps its size")

    def close(self) -> None:
        if not self._shm.closed:
            self._shm.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def mmapfile(File: Any = None, Name: str | None = None, MaximumSize: int = 0,  # noqa: N802,N803
             FileOffset: int = 0, NumberOfBytesToMap: int = 0) -> _MMapFile:
    """A named mapping; ``File`` (a real file to map) is not supported on the face."""
    if File:
        raise_error(ERROR_NOT_SUPPORTED, "mmapfile", "file-backed mappings: use Python's mmap on Linux")
    if not Name:
        raise_error(ERROR_INVALID_PARAMETER, "mmapfile", "Name is required (unnamed mappings share nothing)")
    if FileOffset or NumberOfBytesToMap:
        raise_error(ERROR_ACCESS_DENIED, "mmapfile", "partial views are not supported")
    from ._kernel import to_interproc_name

    return _MMapFile(to_interproc_name(Name, "mapping"), MaximumSize)
