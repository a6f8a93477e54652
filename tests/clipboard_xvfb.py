"""A real X server for the clipboard tests: Xvfb on a free display, plus xclip helpers.

``xvfb`` (session scope) starts ``Xvfb -displayfd -noreset`` so the server itself picks
a free display number and tells us once it accepts connections; it is killed
at the end.  ``-noreset`` keeps atoms across the moments when no client is
connected, as on a desktop, where the session's clients keep the server up.  ``x11`` points the test (and the children it starts) at it, and
at teardown empties both selections and makes sure every background owner
process on that display has exited.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest

OWNER_MARK = b"interproc._clipboard._x11_owner"


def owner_pids(display: str) -> list[int]:
    """Background owner processes serving on ``display`` (they are nobody's children)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if OWNER_MARK not in f.read():
                    continue
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read().split(b"\0")
            with open(f"/proc/{entry}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if f"DISPLAY={display}".encode() in env and state != b"Z":
            found.append(int(entry))
    return found


def wait_gone(pids: list[int], timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if os.path.exists(f"/proc/{p}") and _state(p) != "Z"]
        if alive:
            time.sleep(0.02)
    return alive


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except OSError:
        return "X"


@pytest.fixture(scope="session")
def xvfb():
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (Debian package xvfb)")
    if shutil.which("xclip") is None:
        pytest.skip("xclip is not installed (Debian package xclip)")
    r, w = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(w), "-nolisten", "tcp", "-noreset", "-screen", "0", "320x240x24"],
        pass_fds=[w], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(w)
    try:
        # Xvfb writes the display number once it accepts connections.
        import select

        buf = b""
        deadline = time.monotonic() + 20
        while not buf.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([r], [], [], left)[0]:
                raise RuntimeError("Xvfb did not report a display within 20 s")
            chunk = os.read(r, 64)
            if not chunk:
                raise RuntimeError(f"Xvfb exited ({proc.wait()}) before reporting a display")
            buf += chunk
        display = f":{int(buf)}"
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        os.close(r)
    try:
        yield display
    finally:
        for pid in owner_pids(display):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class XClip:
    """Runs xclip against the test display; foreground copies are killed at teardown."""

    def __init__(self, display: str) -> None:
        self.env = dict(os.environ, DISPLAY=display)
        self.procs: list[subprocess.Popen] = []

    def out(self, target: str | None = None, selection: str = "clipboard", timeout: float = 30) -> bytes:
        argv = ["xclip", "-o", "-selection", selection] + (["-t", target] if target else [])
        p = subprocess.run(argv, env=self.env, capture_output=True, timeout=timeout)
        assert p.returncode == 0, f"{argv} failed: {p.stderr.decode()}"
        return p.stdout

    def copy(self, data: bytes, target: str | None = None, selection: str = "clipboard") -> subprocess.Popen:
        """Start ``xclip -i -quiet`` (foreground, so it stays our child) and wait until it owns."""
        argv = ["xclip", "-i", "-quiet", "-selection", selection] + (["-t", target] if target else [])
        from interproc._clipboard._x11 import X11Backend

        before = X11Backend(selection.upper(), self.env["DISPLAY"]).owner_window()
        p = subprocess.Popen(argv, env=self.env, stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        p.stdin.write(data)
        p.stdin.close()
        wait_owned_by_other(before, selection.upper(), display=self.env["DISPLAY"])
        return p

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()


@pytest.fixture
def x11(xvfb, monkeypatch):
    monkeypatch.setenv("DISPLAY", xvfb)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("INTERPROC_CLIPBOARD", raising=False)
    from interproc._clipboard._x11 import X11Backend

    def clear_both() -> None:  # by explicit display: a test may have changed DISPLAY
        for selection in ("CLIPBOARD", "PRIMARY"):
            X11Backend(selection, xvfb).clear(10)

    clear_both()
    yield xvfb
    clear_both()
    left = wait_gone(owner_pids(xvfb))
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"background owners did not exit when the selection was cleared: {left}"


@pytest.fixture
def xclip(x11):
    tool = XClip(x11)
    try:
        yield tool
    finally:
        tool.close()


def wait_owned_by_other(previous_owner: int, selection: str = "CLIPBOARD", timeout: float = 10,
                        display: str | None = None) -> None:
    """Wait until someone other than ``previous_owner`` owns the selection (xclip started)."""
    from interproc._clipboard._x11 import X11Backend

    b = X11Backend(selection, display)
    deadline = time.monotonic() + timeout
    while b.owner_window() in (0, previous_owner):
        if time.monotonic() > deadline:
            raise AssertionError("xclip did not take the selection")
        time.sleep(0.02)
