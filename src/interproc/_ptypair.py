"""``pty_pair()``: a virtual null-modem cable between two pty device paths.

The ptys and the byte relay live in a small child process (see
``_ptyrelay.py`` for why a process); this object owns it.  ``close()`` (or
leaving the ``with`` block, or the owner dying) closes the relay's stdin,
the relay exits, and the two device paths disappear.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
import weakref

from ._errors import InterprocError, Timeout

_RELAY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_ptyrelay.py")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            proc.stdin.close()  # EOF: the relay's signal to exit
        except OSError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for f in (proc.stdin, proc.stdout, proc.stderr):
        if f is not None:
            try:
                f.close()
            except OSError:
                pass


class PtyPair:
    """Two serial-port paths, ``a`` and ``b``, wired to each other.

    Any process of the same user can open ``a`` or ``b`` as a serial port
    (``interproc.serial.open``, pyserial, minicom, ``cat``); bytes written
    to one arrive at the other, unchanged (raw mode: no echo, no CR/LF
    mangling, no ^C).  A pty has no line: the baud rate, stop bits and
    flow control are accepted and ignored, 5-7 data bits and parity are not
    (``ValueError`` from ``serial.open``), there are no modem lines
    (``SerialPort.modem_lines`` and pyserial's ``cts``/``dtr``/... raise
    ``OSError(25, ENOTTY)``) and no break (``SerialPort.send_break`` raises
    the same; pyserial's own ``send_break`` silently does nothing).  The
    paths are valid until ``close()``.
    """

    a: str
    b: str

    def __init__(self, *, timeout: float | None = 10.0) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-I", _RELAY],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
        )
        self._finalizer = weakref.finalize(self, _stop, self._proc)
        try:
            line = self._read_ready(timeout)
        except BaseException:
            self._finalizer()
            raise
        parts = line.split()
        if len(parts) != 3 or parts[0] != "READY":
            self._finalizer()
            raise InterprocError(f"pty relay said {line!r} instead of READY")
        self.a, self.b = parts[1], parts[2]

    def _read_ready(self, timeout: float | None) -> str:
        out = self._proc.stdout
        deadline = None if timeout is None else time.monotonic() + timeout
        buf = b""
        while b"\n" not in buf:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise Timeout(f"pty relay did not start within {timeout}s")
            ready, _, _ = select.select([out], [], [], left)
            if not ready:
                continue
            chunk = os.read(out.fileno(), 256)
            if not chunk:
                self._proc.wait()
                err = self._proc.stderr.read().decode(errors="replace").strip()
                raise InterprocError(f"pty relay exited ({self._proc.returncode}) before it was ready: {err[-400:]}")
            buf += chunk
        return buf.decode().strip()

    @property
    def pid(self) -> int:
        """The relay process's pid."""
        return self._proc.pid

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def close(self) -> None:
        """Stop the relay; ``a`` and ``b`` stop existing (their users see a hang-up)."""
        self._finalizer()

    def __enter__(self) -> "PtyPair":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<PtyPair a={self.a!r} b={self.b!r}{' closed' if self.closed else ''}>"


def pty_pair(*, timeout: float | None = 10.0) -> PtyPair:
    """Create a virtual null-modem: ``with pty_pair() as p: open(p.a) ... open(p.b)``."""
    return PtyPair(timeout=timeout)
