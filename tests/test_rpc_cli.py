"""`interproc rpc serve` and `interproc rpc call` as real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from conftest import SRC, wait_for_line  # noqa: E402

MODULE = """
class Calc:
    def add(self, a, b):
        return a + b
    def greet(self, name="world"):
        return f"hello {name}"
    def fail(self):
        raise ValueError("no")
    def _hidden(self):
        return "hidden"
"""


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.update(extra)
    return env


def _call(*argv, env=None):
    return subprocess.run([sys.executable, "-m", "interproc", "rpc", "call", *argv], capture_output=True,
                          text=True, timeout=60, env=env or _env())


def test_serve_and_call(tmp_path):
    (tmp_path / "clicalc.py").write_text(MODULE)
    env = _env(INTERPROC_AUTHKEY="s3cret")
    server = subprocess.Popen([sys.executable, "-m", "interproc", "rpc", "serve", "clicalc:Calc", "tcp://127.0.0.1:0"],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = wait_for_line(server, "serving")
        address = line.split()[3]
        assert "add, fail, greet" in line and "_hidden" not in line
        out = _call(address, "add", "1", "2", env=env)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == 3
        out = _call(address, "greet", "--named", '{"name": "rpc"}', env=env)
        assert json.loads(out.stdout) == "hello rpc"
        out = _call(address, "fail", env=env)
        assert out.returncode == 2 and "ValueError: no" in out.stderr
        out = _call(address, "_hidden", env=env)
        assert out.returncode == 2 and "MethodNotFound" in out.stderr
        out = _call(address, "add", "1", "2")  # no authkey: refused
        assert out.returncode == 1
        out = _call(address, "add", "not json", env=env)
        assert out.returncode == 1 and "not JSON" in out.stderr
    finally:
        server.kill()
        server.communicate(timeout=10)
