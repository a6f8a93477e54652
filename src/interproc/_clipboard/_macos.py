"""macOS backend: ``pbcopy`` / ``pbpaste``, plain text only.

Untested here (no macOS on the build machine).  The pasteboard offers no
change event to a process without a Cocoa run loop, so ``watch`` compares
``pbpaste`` output every half second (documented as polling).
"""

from __future__ import annotations

import os
import threading
import time

from .._errors import InterprocError, NotFound
from .._naming import runtime_dir
from . import _cmd
from ._base import TEXT, Backend, Change, ChangeSource, check_format, deadline_of, register_in_file

POLL_SECONDS = 0.5


class MacOSBackend(Backend):
    name = "macos"

    def __init__(self, selection: str = "CLIPBOARD") -> None:
        super().__init__(selection)
        if selection != "CLIPBOARD":
            raise InterprocError("macOS has one pasteboard: selection='PRIMARY' does not exist there")

    def set(self, data: dict[str, bytes], timeout: float | None) -> None:
        if set(data) != {TEXT}:
            raise InterprocError(f"the macOS backend (pbcopy) offers text/plain only, got {sorted(data)}")
        env = dict(os.environ, LANG="en_US.UTF-8")  # pbcopy decodes stdin by the locale
        _cmd.check(_cmd.run([_cmd.require("pbcopy", "macOS")], input=data[TEXT], timeout=timeout, env=env), "pbcopy")

    def get(self, fmt: str, timeout: float | None) -> bytes:
        check_format(fmt)
        if fmt != TEXT:
            raise NotFound(f"the macOS backend (pbpaste) reads text/plain only, not {fmt!r}")
        env = dict(os.environ, LANG="en_US.UTF-8")  # pbpaste encodes stdout by the locale
        argv = [_cmd.require("pbpaste", "macOS"), "-Prefer", "txt"]
        return _cmd.check(_cmd.run(argv, timeout=timeout, env=env), "pbpaste")

    def formats(self, timeout: float | None) -> list[str]:
        return [TEXT] if self.get(TEXT, timeout) else []

    def clear(self, timeout: float | None) -> None:
        _cmd.check(_cmd.run([_cmd.require("pbcopy", "macOS")], input=b"", timeout=timeout), "pbcopy")

    def register_format(self, name: str) -> int:
        return register_in_file(os.path.join(runtime_dir("user"), "clipboard-formats.json"), name)

    def change_source(self) -> ChangeSource:
        return PollSource(self)


class PollSource(ChangeSource):
    def __init__(self, backend: MacOSBackend) -> None:
        self.backend = backend
        self._last = backend.get(TEXT, 5)
        self._stop = threading.Event()
        self._sequence = 0

    def next(self, timeout: float | None) -> Change | None:
        deadline = deadline_of(timeout)
        while not self._stop.is_set():
            now = self.backend.get(TEXT, 5)
            if now != self._last:
                self._last = now
                self._sequence += 1
                return Change("CLIPBOARD", self._sequence, 0, "set")
            if deadline is not None and time.monotonic() >= deadline:
                return None
            self._stop.wait(POLL_SECONDS)
        return None

    def close(self) -> None:
        self._stop.set()
