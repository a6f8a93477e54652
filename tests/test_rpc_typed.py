"""The optional typed interface: a typing.Protocol the proxy is typed and checked as."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from typing import Protocol

import pytest

from interproc import rpc

sys.path.insert(0, os.path.dirname(__file__))
from conftest import SRC, wait_for_line  # noqa: E402


class ICalc(Protocol):
    def add(self, a: int, b: int) -> int: ...
    def subtract(self, minuend: int, subtrahend: int) -> int: ...


SERVER = r"""
import sys
from interproc import rpc

class Calc:
    def add(self, a, b):
        return a + b
    def subtract(self, minuend, subtrahend):
        return minuend - subtrahend
    def shutdown(self):
        return "not in the interface"

srv = rpc.Server(Calc(), sys.argv[1])
print("ADDRESS", srv.address, flush=True)
srv.serve_forever()
"""


def test_typed_proxy_exposes_the_interface(spawn):
    srv = spawn(SERVER, "tcp://127.0.0.1:0")
    address = wait_for_line(srv, "ADDRESS").split()[1]
    p = rpc.connect(address, interface=ICalc, timeout=10)
    try:
        assert p.add(1, 2) == 3
        assert p.subtract(subtrahend=1, minuend=3) == 2
        import inspect

        assert list(inspect.signature(p.add).parameters) == ["a", "b"]
        with pytest.raises(TypeError):
            p.add(1)  # checked against the interface before anything is sent
        with pytest.raises(AttributeError):
            p.shutdown  # type: ignore[attr-defined]  # not part of ICalc
        untyped = rpc.connect(address, timeout=10)
        try:
            assert untyped.shutdown() == "not in the interface"
            assert untyped.as_(ICalc).add(2, 3) == 5
        finally:
            untyped.close()
    finally:
        p.close()  # type: ignore[attr-defined]


PROGRAM = """
from typing import Protocol
from interproc import rpc

class ICalc(Protocol):
    def add(self, a: int, b: int) -> int: ...

p = rpc.connect("tcp://127.0.0.1:1", interface=ICalc)
total: int = p.add(1, 2)
q = rpc.connect("tcp://127.0.0.1:1").as_(ICalc)
other: int = q.add(3, 4)
"""


@pytest.mark.skipif(shutil.which("mypy") is None and subprocess.run([sys.executable, "-m", "mypy", "--version"],
                    capture_output=True).returncode != 0, reason="mypy is not installed")
def test_mypy_sees_the_interface(tmp_path):
    good = tmp_path / "good.py"
    good.write_text(textwrap.dedent(PROGRAM))
    bad = tmp_path / "bad.py"
    bad.write_text(textwrap.dedent(PROGRAM) + 'wrong: str = p.add(1, "2")\np.missing()\n')
    env = dict(os.environ, MYPYPATH=SRC)
    run = [sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", os.devnull, "--follow-imports=silent"]
    ok = subprocess.run(run + [str(good)], capture_output=True, text=True, env=env, timeout=240, cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout
    ko = subprocess.run(run + [str(bad)], capture_output=True, text=True, env=env, timeout=240, cwd=tmp_path)
    assert ko.returncode == 1
    assert 'Argument 2 to "add" of "ICalc" has incompatible type "str"' in ko.stdout
    assert '"ICalc" has no attribute "missing"' in ko.stdout
    assert "Incompatible types in assignment" in ko.stdout
