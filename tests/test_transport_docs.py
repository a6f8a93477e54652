"""Every python example in docs/pipes.md, docs/sockets.md and docs/architecture.md runs as written."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

from conftest import SRC

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def _examples():
    for doc in ("pipes.md", "sockets.md", "architecture.md"):
        for i, code in enumerate(BLOCK.findall((DOCS / doc).read_text())):
            yield pytest.param(code, id=f"{doc}-{i}")


@pytest.mark.parametrize("code", list(_examples()))
def test_doc_example_runs(code):
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip(), "the example printed nothing"
