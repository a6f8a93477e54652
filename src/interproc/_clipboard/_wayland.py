"""Wayland backend: the ``wl-copy`` / ``wl-paste`` programs of wl-clipboard.

Untested here (no Wayland compositor on the build machine).  wl-clipboard
uses the wlr/ext data-control protocols where the compositor has them and
otherwise briefly shows a window to get focus (GNOME); ``wl-copy`` forks a
background owner itself, the way our X11 owner does.  One ``wl-copy`` offers
one MIME type, so ``set`` takes one format (text/plain is offered under its
usual aliases by wl-copy itself).
"""

from __future__ import annotations

import os
import select
import subprocess
import tempfile

from .._errors import InterprocError, NotFound, Timeout
from .._naming import runtime_dir
from . import _cmd
from ._base import (
    Backend,
    Change,
    ChangeSource,
    check_format,
    deadline_of,
    formats_from_targets,
    register_in_file,
    remaining,
)

_PKG = "wl-clipboard"


class WaylandBackend(Backend):
    name = "wayland"

    def _sel(self) -> list[str]:
        return ["--primary"] if self.selection == "PRIMARY" else []

    def set(self, data: dict[str, bytes], timeout: float | None) -> None:
        if len(data) != 1:
            raise InterprocError(
                f"the Wayland clipboard (wl-copy) offers one format per copy, got {sorted(data)}"
            )
        (fmt, value), = data.items()
        argv = [_cmd.require("wl-copy", _PKG), *self._sel(), "--type", fmt]
        # wl-copy forks a child that serves the data; that child must not hold
        # our pipes, or we would wait for it to exit.
        with tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.run(argv, input=value, stdout=subprocess.DEVNULL, stderr=err, timeout=timeout)
            except subprocess.TimeoutExpired:
                raise Timeout(f"wl-copy did not finish within {timeout} s") from None
            if proc.returncode != 0:
                err.seek(0)
                msg = err.read().decode("utf-8", "replace").strip()
                raise InterprocError(f"wl-copy failed (exit {proc.returncode}): {msg or 'no message'}")

    def get(self, fmt: str, timeout: float | None) -> bytes:
        check_format(fmt)
        argv = [_cmd.require("wl-paste", _PKG), *self._sel(), "--no-newline", "--type", fmt]
        proc = _cmd.run(argv, timeout=timeout)
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()
            if "No selection" in err or "No suitable type" in err or "Nothing is copied" in err:
                raise NotFound(f"the Wayland {self.selection} selection does not offer {fmt!r} ({err})")
            _cmd.check(proc, "wl-paste")
        return proc.stdout

    def formats(self, timeout: float | None) -> list[str]:
        argv = [_cmd.require("wl-paste", _PKG), *self._sel(), "--list-types"]
        proc = _cmd.run(argv, timeout=timeout)
        if proc.returncode != 0:
            return []  # nothing is copied
        return formats_from_targets(proc.stdout.decode("utf-8", "replace").split())

    def clear(self, timeout: float | None) -> None:
        _cmd.check(_cmd.run([_cmd.require("wl-copy", _PKG), *self._sel(), "--clear"], timeout=timeout), "wl-copy --clear")

    def register_format(self, name: str) -> int:
        # Wayland has no atom table: ids come from a per-user registry file.
        return register_in_file(os.path.join(runtime_dir("user"), "clipboard-formats.json"), name)

    def change_source(self) -> ChangeSource:
        return WatchProcess([_cmd.require("wl-paste", _PKG), *self._sel(), "--watch", "echo", "changed"], self.selection)


class WatchProcess(ChangeSource):
    """Changes reported one line each by a helper process (``wl-paste --watch``)."""

    def __init__(self, argv: list[str], selection: str) -> None:
        self.selection = selection
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._wake_r, self._wake_w = os.pipe()
        self._sequence = 0
        self._buf = b""
        self._closed = False

    def next(self, timeout: float | None) -> Change | None:
        deadline = deadline_of(timeout)
        while not self._closed:
            if b"\n" in self._buf:
                _, self._buf = self._buf.split(b"\n", 1)
                self._sequence += 1
                return Change(self.selection, self._sequence, 0, "set")
            try:
                left = remaining(deadline, "waiting for a clipboard change")
            except Timeout:
                return None
            ready, _, _ = select.select([self.proc.stdout, self._wake_r], [], [], 0.5 if left is None else min(left, 0.5))
            if self._wake_r in ready:
                return None
            if self.proc.stdout in ready:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    raise InterprocError(f"{self.proc.args[0]} --watch exited ({self.proc.wait()})")
                self._buf += chunk
        return None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        os.write(self._wake_w, b"x")
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
