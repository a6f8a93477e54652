"""interproc msg ... and interproc dde ... against real window and DDE server processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from conftest import SRC
from test_messages import QUIT, start_window, stop_window


def cli(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "interproc", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def popen(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "interproc", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def test_msg_send_post_broadcast_windows(spawn, name):
    proc = start_window(spawn, name)
    try:
        assert cli("msg", "post", name, "0x400", "5").returncode == 0
        deadline = time.monotonic() + 20
        while True:
            out = cli("msg", "send", name, "0x401")
            assert out.returncode == 0, out.stderr
            if json.loads(out.stdout)["seen"] == [5]:
                break
            assert time.monotonic() < deadline
        listed = cli("msg", "windows", "--json")
        assert {"name": name, "owner_pid": proc.pid} in json.loads(listed.stdout)
        b = cli("msg", "broadcast", "0x400", "6")
        assert f"{name}\tnull" in b.stdout  # the handler returned None
        copied = cli("msg", "copy", name, "hello", "--tag", "3")
        assert json.loads(copied.stdout)[:2] == [5, 3]
        boom = cli("msg", "send", name, "0x402")
        assert boom.returncode == 1 and "KeyError" in boom.stderr
    finally:
        stop_window(proc, name)
    missing = cli("msg", "send", name, "0x400")
    assert missing.returncode == 1 and "no window" in missing.stderr
    assert QUIT == 0x404


def test_dde_services_request_poke_execute_advise(name):
    server = popen("dde", "serve", name, "Stocks", "ACME=101.5")
    advise = None
    try:
        assert "serving" in server.stderr.readline()
        listed = json.loads(cli("dde", "services", "--json").stdout)
        assert {"service": name, "topics": ["System", "Stocks"]} in listed
        assert cli("dde", "request", name, "Stocks", "ACME").stdout == "101.5\n"
        assert cli("dde", "request", name, "System", "Status").stdout == "Ready\n"
        refused = cli("dde", "execute", name, "Stocks", "[Reset]")
        assert refused.returncode == 1 and "no on_execute handler" in refused.stderr
        advise = popen("dde", "advise", name, "Stocks", "ACME")
        assert "advising" in advise.stderr.readline()
        assert cli("dde", "poke", name, "Stocks", "ACME", "99").returncode == 0
        assert advise.stdout.readline() == "ACME\t99\n"
        assert server.stdout.readline() == "poke\tStocks\tACME\t99\n"
        advise.send_signal(signal.SIGINT)
        assert advise.wait(timeout=10) == 130
    finally:
        for p in (advise, server):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            if p is not None:
                p.communicate()
    assert server.returncode == 0


def test_ls_shows_windows_and_dde_services_and_gc_removes_dead_ones(spawn, name_factory):
    from interproc import dde, messages

    win_name, svc_name = name_factory(), name_factory()
    with messages.Window(win_name), dde.Server(svc_name):
        rows = json.loads(cli("ls", "--json").stdout)
        mine = {(r["kind"], r["name"]): r for r in rows}
        assert mine[("msgwin", win_name)]["owner_pid"] == os.getpid()
        assert mine[("dde", svc_name)]["state"] == "alive"
    dead = spawn(f"from interproc import messages; w = messages.Window({win_name!r}); print('up', flush=True); input()",
                 stdin=subprocess.PIPE)
    assert dead.stdout.readline().strip() == "up"
    dead.kill()
    dead.wait(timeout=10)
    rows = json.loads(cli("ls", "--json", "--kind", "msgwin").stdout)
    assert [r["state"] for r in rows if r["name"] == win_name] == ["stale"]
    assert win_name in cli("gc").stdout
    assert messages.find_window(win_name) is None
