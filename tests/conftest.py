"""Fixtures shared by every test.

* Each test session runs in its own runtime directory (INTERPROC_RUNTIME_DIR),
  inherited by the child processes the tests start.
* ``name`` gives each test unique object names carrying a session token, and
  the autouse ``no_leaks`` fixture fails a test that leaves behind a segment
  with that token in /dev/shm, a file in the runtime directory, or a child
  process.
* ``spawn`` starts real Python processes and kills and reaps them afterwards.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid

import pytest

SESSION = uuid.uuid4().hex[:6]
_counter = itertools.count()
_RUNTIME = tempfile.mkdtemp(prefix=f"interproc-test-{SESSION}-")
os.chmod(_RUNTIME, 0o700)
os.environ["INTERPROC_RUNTIME_DIR"] = _RUNTIME
SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_RUNTIME, ignore_errors=True)


def _children() -> set[int]:
    """Child processes of the test process, except multiprocessing's
    long-lived helpers (the resource tracker lives for the whole session)."""
    pids: set[int] = set()
    try:
        for tid in os.listdir(f"/proc/{os.getpid()}/task"):
            with open(f"/proc/{os.getpid()}/task/{tid}/children") as f:
                pids.update(int(p) for p in f.read().split())
    except OSError:
        pass
    keep = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"resource_tracker" in f.read():
                    continue
        except OSError:
            pass
        keep.add(pid)
    return keep


def _our_segments() -> set[str]:
    return {f for f in os.listdir("/dev/shm") if SESSION in f}


def _runtime_files() -> set[str]:
    # .pipe-key: the per-user key of named-pipe tokens, made once on first use
    return set(os.listdir(_RUNTIME)) - {".pipe-key"} if os.path.isdir(_RUNTIME) else set()


@pytest.fixture
def name(request) -> str:
    """A unique object name for this test (call ``name_factory`` for more)."""
    return f"t{SESSION}-{next(_counter)}"


@pytest.fixture
def name_factory():
    return lambda: f"t{SESSION}-{next(_counter)}"


@pytest.fixture(autouse=True)
def no_leaks():
    before_children = _children()
    before_segments = _our_segments()
    before_files = _runtime_files()
    yield
    import gc

    gc.collect()  # run the finalizers of handles the test dropped
    deadline = time.monotonic() + 3
    while True:
        segments = _our_segments() - before_segments
        files = _runtime_files() - before_files
        children = _children() - before_children
        if not (segments or files or children) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except OSError:
            pass
    for seg in segments:
        try:
            os.unlink(os.path.join("/dev/shm", seg))
        except OSError:
            pass
    for f in files:
        path = os.path.join(_RUNTIME, f)
        (shutil.rmtree if os.path.isdir(path) else os.unlink)(path)
    assert not segments, f"test left segments in /dev/shm: {sorted(segments)}"
    assert not files, f"test left files in the runtime dir: {sorted(files)}"
    assert not children, f"test left child processes: {sorted(children)}"


class Spawner:
    """Start ``python -c CODE`` processes; every one is killed and reaped at teardown."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def __call__(self, code: str, *args: str, stdin=None, env=None, **kw) -> subprocess.Popen:
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = SRC + os.pathsep + full_env.get("PYTHONPATH", "")
        full_env.update(env or {})
        proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code), *args],
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            text=kw.pop("text", True),
            **kw,
        )
        self.procs.append(proc)
        return proc

    def run(self, code: str, *args: str, timeout: float = 30, **kw) -> str:
        """Run to completion; return stdout, fail the test with stderr on error."""
        proc = self(code, *args, **kw)
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, f"child exited {proc.returncode}:\n{err}"
        return out

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.communicate(timeout=10)
            except Exception:
                pass


@pytest.fixture
def spawn():
    spawner = Spawner()
    try:
        yield spawner
    finally:
        spawner.close()


def wait_for_line(proc: subprocess.Popen, expected: str, timeout: float = 15) -> str:
    """Read the child's stdout until a line starting with ``expected`` (a readiness signal)."""
    import queue
    import threading

    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        while True:
            line = proc.stdout.readline()
            lines.put(line)
            if not line or line.startswith(expected):
                return

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"child did not print {expected!r} within {timeout}s") from None
        if not line:
            proc.wait(timeout=5)
            raise AssertionError(f"child exited before {expected!r}: {proc.stderr.read()}")
        if line.startswith(expected):
            return line.strip()
