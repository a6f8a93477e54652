"""CLI conventions (issue 10): --version, bad --kind, FIFOs in ls/gc, gc NAME and
--dry-run, errors on stderr, serial pty's exit status, pipe serve's defaults.
Every command runs as a real `python -m interproc` process."""

from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
import sys

import pytest

import interproc
from conftest import SRC, wait_for_line
from interproc.pipes import Fifo, NamedPipe

ENV = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))


def cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "interproc", *args], capture_output=True, text=True,
                          timeout=30, env=ENV, **kw)


def _fifos():
    out = cli("ls", "--json", "--kind", "fifo")
    assert out.returncode == 0, out.stderr
    return {o["name"]: o for o in json.loads(out.stdout)}


def test_version():
    out = cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"interproc {interproc.__version__}"


def test_ls_with_an_unknown_kind_is_an_error_on_stderr():
    out = cli("ls", "--kind", "nonsense")
    assert out.returncode == 2 and out.stdout == ""
    assert "invalid choice: 'nonsense'" in out.stderr and "pipe" in out.stderr


def test_fifos_are_listed_and_collected_by_name_with_dry_run(name_factory, spawn):
    a, b = name_factory(), name_factory()
    fa, fb = Fifo.create(a), Fifo.create(b)
    try:
        holder = spawn("import os, sys, time\nfd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)\n"
                       "print('OPEN', flush=True); time.sleep(60)\n", fa.path)
        wait_for_line(holder, "OPEN")
        fifos = _fifos()
        assert fifos[a]["state"] == "alive" and fifos[a]["owner_pid"] == holder.pid
        assert fifos[b]["state"] == "stale" and fifos[b]["mode"] & 0o777 == 0o600
        # A live FIFO is not removed, and saying its name is an error that says why.
        out = cli("gc", a)
        assert out.returncode == 1 and "not stale" in out.stderr and os.path.exists(fa.path)
        holder.kill()
        holder.wait()
        assert _fifos()[a]["state"] == "stale"
        dry = cli("gc", "--dry-run", a, b)
        assert dry.returncode == 0, dry.stderr
        assert f"would remove fifo {a!r}" in dry.stdout and f"would remove fifo {b!r}" in dry.stdout
        assert os.path.exists(fa.path) and os.path.exists(fb.path)  # a dry run removes nothing
        out = cli("gc", b)  # only the one named
        assert out.returncode == 0 and f"removed fifo {b!r}" in out.stdout, out.stderr
        assert not os.path.exists(fb.path) and os.path.exists(fa.path)
        out = cli("gc")  # no names: every stale object of this user, FIFOs included
        assert out.returncode == 0 and f"removed fifo {a!r}" in out.stdout
        assert not os.path.exists(fa.path)
    finally:
        fa.unlink()
        fb.unlink()


def test_gc_of_an_unknown_name_is_an_error_on_stderr(name):
    out = cli("gc", name)
    assert out.returncode == 1 and f"no object named {name!r}" in out.stderr


def test_errors_go_to_stderr(name):
    out = cli("shm", "info", name)
    assert out.returncode == 1 and out.stdout == "" and name in out.stderr
    out = cli("pipe", "send", name, "x")
    assert out.returncode == 1 and out.stdout == "" and "nothing listen" in out.stderr


def test_serial_pty_exits_130_on_ctrl_c():
    proc = subprocess.Popen([sys.executable, "-m", "interproc", "serial", "pty"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        wait_for_line(proc, "b ")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_pipe_serve_max_instances_defaults_as_the_api():
    from interproc.cli import build_parser

    api_default = inspect.signature(NamedPipe.serve).parameters["max_instances"].default
    assert build_parser().parse_args(["pipe", "serve", "x"]).max_instances == api_default
