"""Every python example in docs/rpc.md runs as written (fresh process, temp cwd)."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

from conftest import SRC

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "rpc.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


@pytest.mark.parametrize("code", BLOCKS, ids=[f"rpc.md-{i}" for i in range(len(BLOCKS))])
def test_doc_example_runs(code, tmp_path):
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=45, env=env,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip(), "the example printed nothing"
