"""interproc pipe serve|send|recv and the tour steps of pipes and sockets, as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from conftest import SRC
from interproc.pipes import NamedPipe

ENV = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))


def cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "interproc", *args], capture_output=True, text=True,
                          timeout=30, env=ENV, **kw)


def test_serve_and_send_with_echo(name):
    server = subprocess.Popen([sys.executable, "-m", "interproc", "pipe", "serve", name, "--echo", "--count", "3"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        sent = cli("pipe", "send", name, "hello", "wörld", "--reply", "--timeout", "15")
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.splitlines() == ["hello", "wörld"]
        piped = cli("pipe", "send", name, input="from stdin\n")
        assert piped.returncode == 0, piped.stderr
        out, err = server.communicate(timeout=20)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 0, err
    lines = out.splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == ["hello", "wörld", "from stdin"]
    assert all(line.startswith("[pid ") for line in lines)


def test_recv_prints_what_the_server_sends(name):
    with NamedPipe.serve(name) as srv:
        def serve():
            with srv.accept(timeout=20) as ch:
                for text in (b"first", b"second"):
                    ch.send(text)

        t = threading.Thread(target=serve)
        t.start()
        got = cli("pipe", "recv", name, "--timeout", "15")
        t.join(20)
    assert got.returncode == 0, got.stderr
    assert got.stdout.splitlines() == ["first", "second"]


def test_send_to_missing_pipe_is_a_clear_error(name):
    got = cli("pipe", "send", name, "x", "--timeout", "0.2")
    assert got.returncode == 1
    assert "interproc pipe:" in got.stderr and name in got.stderr


def test_tour_steps_for_pipes_and_sockets():
    from interproc.cli.tour import all_steps

    steps = {s.method: s for s in all_steps()}
    assert steps["anonymous pipe"].order == 50 and steps["named pipe"].order == 51
    assert steps["socket"].order == 70
    expected = {
        "anonymous pipe": '["one", "two", "three"]',  # what the child read, reported back by the child
        "named pipe": "'HELLO THROUGH A NAMED PIPE'",  # the server's reply as the client got it
        "socket": "{'sum': 10}",
    }
    for method, text in expected.items():
        detail = steps[method].run()
        assert text in detail, detail


def test_ls_and_gc_show_named_pipes(name, name_factory, spawn, monkeypatch, capsys):
    """`interproc ls` lists a served pipe as alive with its owner's pid, a dead one as stale; `gc` removes it."""
    import interproc.cli._objects as objects
    from conftest import wait_for_line
    from interproc.cli import main

    monkeypatch.setattr(objects, "KIND_MODULES", ("interproc._pipes._named",))  # only the kind under test
    dead = name_factory()
    proc = spawn("import sys\nfrom interproc.pipes import NamedPipe\nsrv = NamedPipe.serve(sys.argv[1])\n"
                 "print('READY', flush=True)\nimport time\ntime.sleep(60)\n", dead)
    wait_for_line(proc, "READY")
    proc.kill()
    proc.wait(10)
    with NamedPipe.serve(name):
        assert main(["ls", "--kind", "pipe"]) == 0
        rows = {line.split()[2]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
        assert rows[name][3] == str(os.getpid()) and rows[name][6] == "alive"
        assert rows[dead][3] == "-" and rows[dead][6] == "stale"
        assert main(["gc"]) == 0
        assert f"removed pipe '{dead}'" in capsys.readouterr().out
        main(["ls", "--kind", "pipe"])
        out = capsys.readouterr().out
        assert name in out and dead not in out
