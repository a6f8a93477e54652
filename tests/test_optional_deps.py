"""Without an optional dependency, the CLI and the tour name the extra to install
(issue 10).  The CLI runs as a real process in which a sitecustomize module
makes ``import Xlib`` / ``import serial`` fail, as in a venv without them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import SRC

BLOCKER = textwrap.dedent('''
    import os, sys
    class _Block:
        blocked = set(filter(None, os.environ.get("INTERPROC_TEST_BLOCK", "").split(",")))
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.blocked:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None
    sys.meta_path.insert(0, _Block())
''')


@pytest.fixture
def without(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)

    def run(modules, *args, display=":99"):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), SRC]),
                   INTERPROC_TEST_BLOCK=",".join(modules), DISPLAY=display)
        env.pop("WAYLAND_DISPLAY", None)
        return subprocess.run([sys.executable, "-m", "interproc", *args], capture_output=True, text=True,
                              timeout=60, env=env)

    return run


def test_the_blocker_works(without):
    out = without(["serial"], "serial", "ports")
    assert "Traceback" not in out.stderr or "No module named 'serial'" in out.stderr


def test_clip_get_without_python_xlib_names_the_extra(without):
    out = without(["Xlib"], "clip", "get")
    assert out.returncode == 1, out.stderr
    assert "pip install 'interproc[clipboard]'" in out.stderr and "python-xlib" in out.stderr
    assert "Traceback" not in out.stderr


def test_serial_ports_without_pyserial_names_the_extra(without):
    out = without(["serial"], "serial", "ports")
    assert out.returncode == 1, out.stderr
    assert "pip install 'interproc[serial]'" in out.stderr and "pyserial" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("module, method, extra", [("Xlib", "clipboard", "clipboard"),
                                                   ("serial", "serial port", "serial")])
def test_tour_skips_the_step_naming_the_extra(without, module, method, extra):
    out = without([module], "tour", "--only", method, "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    (step,) = json.loads(out.stdout)
    assert step["status"] == "skipped", step
    assert f"pip install 'interproc[{extra}]'" in step["detail"]
