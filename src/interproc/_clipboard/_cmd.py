"""Running the helper programs of the Wayland and macOS backends, with timeouts."""

from __future__ import annotations

import shutil
import subprocess

from .._errors import InterprocError, Timeout


def require(program: str, package: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise InterprocError(f"the clipboard backend needs {program!r} ({package}), which is not on PATH")
    return path


def run(
    argv: list[str], *, input: bytes | None = None, timeout: float | None, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run a helper; a timeout kills it and raises :class:`Timeout`."""
    try:
        return subprocess.run(
            argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=None if input is not None else subprocess.DEVNULL, timeout=timeout, env=env,
        )
    except subprocess.TimeoutExpired:
        raise Timeout(f"{argv[0]} did not finish within {timeout} s") from None
    except OSError as exc:
        raise InterprocError(f"cannot run {argv[0]}: {exc}") from exc


def check(proc: subprocess.CompletedProcess, what: str) -> bytes:
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()
        raise InterprocError(f"{what} failed (exit {proc.returncode}): {err or 'no message'}")
    return proc.stdout
