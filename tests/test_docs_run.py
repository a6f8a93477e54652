"""Docs that run: every ```python block of README.md and docs/*.md, as a program.

Each block runs as it stands in a fresh ``python3 example.py`` process (cwd a temporary
directory, this session's INTERPROC_RUNTIME_DIR, PYTHONPATH=src, 30 s at most);
a block that uses the clipboard gets DISPLAY pointing at the session's Xvfb.
Blocks not meant to run carry another info string (```sh, ```console, ```text),
and a fence without one is a failure, so nothing slips out of this check.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

from clipboard_xvfb import owner_pids, wait_gone, xvfb  # noqa: F401
from conftest import SRC
from docs_blocks import ROOT, Block, all_blocks, python_blocks

TIMEOUT = 30


def _shm_segments() -> set[str]:
    prefix = f"interproc.{os.getuid()}."
    return {f for f in os.listdir("/dev/shm") if f.startswith(prefix)}


def _named_in(block: Block, segments: set[str]) -> set[str]:
    """Segments whose object name appears in the block's text (other programs on
    this machine may create and remove their own segments meanwhile)."""
    return {s for s in segments if s.split(".", 3)[-1] in block.code}


def _uses_clipboard(block: Block) -> bool:
    return re.search(r"\bclipboard\b", block.code) is not None


@pytest.mark.parametrize("block", [b for b in python_blocks() if not _uses_clipboard(b)],
                         ids=lambda b: b.where)
def test_python_block_runs(block: Block, tmp_path: pathlib.Path) -> None:
    _run(block, tmp_path, None)


@pytest.mark.display
@pytest.mark.parametrize("block", [b for b in python_blocks() if _uses_clipboard(b)],
                         ids=lambda b: b.where)
def test_clipboard_block_runs(block: Block, tmp_path: pathlib.Path, xvfb: str) -> None:
    # xvfb as an argument, not getfixturevalue: the session's Xvfb must exist
    # before no_leaks takes its list of child processes.
    _run(block, tmp_path, xvfb)


def _run(block: Block, tmp_path: pathlib.Path, display: str | None) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    if display is not None:
        env["DISPLAY"] = display
        env.pop("WAYLAND_DISPLAY", None)
        env.pop("INTERPROC_CLIPBOARD", None)
    before = _shm_segments()
    try:
        # A file rather than -c, as a reader would save it: multiprocessing can then
        # import the example's __main__ in its children.
        script = tmp_path / "example.py"
        script.write_text(block.code, encoding="utf-8")
        proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{block.where}: the example did not finish within {TIMEOUT} s\n"
                    f"{exc.stderr or ''}", pytrace=False)
    finally:
        if display is not None:
            _clear_clipboard(display)
    assert proc.returncode == 0, (
        f"{block.where}: the example exited {proc.returncode}\n{proc.stderr}")
    left = _named_in(block, _shm_segments() - before)
    for seg in left:
        os.unlink(os.path.join("/dev/shm", seg))
    assert not left, f"{block.where}: the example left shared-memory segments: {sorted(left)}"


def _clear_clipboard(display: str) -> None:
    """Empty both selections so a background owner started by the example exits."""
    from interproc._clipboard._x11 import X11Backend

    for selection in ("CLIPBOARD", "PRIMARY"):
        X11Backend(selection, display).clear(10)
    for pid in wait_gone(owner_pids(display)):
        os.kill(pid, 9)


def test_every_fence_says_what_it_is() -> None:
    """A bare ``` fence would be neither run nor labelled as output."""
    bare = [b.where for b in all_blocks() if not b.info]
    assert not bare, ("fenced blocks without an info string (use python to have it run, "
                      f"else sh, console or text): {bare}")


def test_blocks_are_found() -> None:
    # The collector itself: README.md has python examples, so finding none is a parsing bug.
    assert any(b.path == ROOT / "README.md" for b in python_blocks())


def test_api_reference_lists_every_public_module() -> None:
    """docs/reference.md has one ``::: module`` line per public module (mkdocstrings)."""
    from test_foundation import PUBLIC_MODULES

    listed = set(re.findall(r"^::: (\S+)$", (ROOT / "docs" / "reference.md").read_text(), re.M))
    missing = [m for m in PUBLIC_MODULES if m not in listed]
    assert not missing, f"add to docs/reference.md: {', '.join(f'::: {m}' for m in missing)}"
