"""`interproc serial ...` commands and the serial tour step, as real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

import interproc.serial as serial
from interproc import ChannelClosed
from conftest import SRC


def _cli(*args: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "interproc", "serial", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, **kw)


@pytest.fixture
def procs():
    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.communicate(timeout=10)


def _run(procs, *args: str, timeout: float = 30) -> tuple[int, str, str]:
    p = _cli(*args)
    procs.append(p)
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out.decode(), err.decode()


def _listening(p: subprocess.Popen) -> None:
    line = p.stderr.readline().decode()
    assert line.startswith("recv: listening"), line


def test_pty_command_makes_a_usable_pair_until_ctrl_c(procs):
    p = _cli("pty")
    procs.append(p)
    a = p.stdout.readline().decode().split()
    b = p.stdout.readline().decode().split()
    assert a[0] == "a" and b[0] == "b"
    with serial.open(a[1]) as pa, serial.open(b[1]) as pb:
        pa.write(b"through the cli pty")
        assert pb.read_exactly(19, timeout=10) == b"through the cli pty"
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=10) == 130  # stopped by Ctrl-C, like every command
        with pytest.raises(ChannelClosed, match="hung up"):  # the pair went away with the command
            pa.read(1, timeout=10)


def test_send_and_recv_framed(procs):
    with serial.pty_pair() as cable:
        r = _cli("recv", cable.b, "--framed", "--count", "2", "--timeout", "20")
        procs.append(r)
        _listening(r)
        assert _run(procs, "send", cable.a, "hello", "--framed")[0] == 0
        assert _run(procs, "send", cable.a, "wörld", "--framed")[0] == 0  # a second sender session
        out, err = r.communicate(timeout=20)
        assert r.returncode == 0, err
        assert out.decode().splitlines() == ["hello", "wörld"]


def test_send_and_recv_raw_bytes(procs):
    with serial.pty_pair() as cable:
        r = _cli("recv", cable.b, "--count", "6", "--timeout", "20", "-b", "9600")
        procs.append(r)
        _listening(r)
        assert _run(procs, "send", cable.a, "abc", "-b", "9600", "--newline")[0] == 0
        assert _run(procs, "send", cable.a, "de", "-b", "9600")[0] == 0
        out, err = r.communicate(timeout=20)
        assert r.returncode == 0, err
        assert out == b"abc\nde"


def test_recv_timeout_and_errors(procs):
    with serial.pty_pair() as cable:
        code, out, err = _run(procs, "recv", cable.b, "--framed", "--count", "1", "--timeout", "0.3")
        assert code == 1 and "timed out after 0 of 1 messages" in err
        code, out, err = _run(procs, "recv", cable.b, "--timeout", "0.2")  # no count: listen for S seconds
        assert code == 0 and out == ""
    code, out, err = _run(procs, "send", "/dev/ttyNOPE0", "x")
    assert code == 1 and "/dev/ttyNOPE0" in err and "no such device" in err
    code, out, err = _run(procs, "send", "/dev/ttyNOPE0", "x", "-b", "-5")
    assert code == 1 and "baudrate" in err


def test_ports_command(procs):
    code, out, err = _run(procs, "ports", "--json")
    assert code == 0
    listing = json.loads(out)
    assert set(listing) == {"serial", "parallel"}
    assert [p["device"] for p in listing["serial"]] == [p["device"] for p in serial.ports()]
    code, out, err = _run(procs, "ports")
    assert code == 0 and out.strip()


def test_tour_step_runs_two_processes():
    from interproc.cli.tour import step_serial

    (step,) = step_serial.STEPS
    assert step.order == 100
    detail = step.run()
    assert "{'sum': 10}" in detail and "1 noise frame(s) dropped" in detail
