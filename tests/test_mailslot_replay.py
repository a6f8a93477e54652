"""A captured signed domain-mailslot datagram is refused after the server restarts.

Real processes on this host only: every datagram goes out with TTL 0 (it
never leaves the machine) on a port of its own.
"""

from __future__ import annotations

import random
import socket
import time

import pytest

from conftest import wait_for_line
from interproc._mailslot import _domain as domain

KEY = "replay-test-key"

SERVER = """
import sys, interproc
from interproc.mailslot import Mailslot
name, key, port, n = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3]), int(sys.argv[4])
slot = Mailslot.create(name, domain=True, authkey=key, port=port)
print("READY", flush=True)
got = []
for _ in range(n):
    try:
        got.append(slot.read(timeout=float(sys.argv[5])).decode())
    except interproc.Timeout:
        got.append("-")
print("GOT", ",".join(got), "rejected", slot.rejected, flush=True)
slot.close()
"""

WRITER = """
import sys
from interproc.mailslot import Mailslot
Mailslot.write(sys.argv[1], sys.argv[2].encode(), scope="domain", authkey=sys.argv[3].encode(),
               port=int(sys.argv[4]), ttl=0)
"""


def _capture_socket(port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((domain.DOMAIN_GROUP, port))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                 socket.inet_aton(domain.DOMAIN_GROUP) + socket.inet_aton("0.0.0.0"))
    s.settimeout(10)
    return s


def test_replay_after_server_restart_is_refused(spawn, name):
    port = random.randrange(40000, 60000)
    spy = _capture_socket(port)
    with spy:
        first = spawn(SERVER, name, KEY, str(port), "1", "10")
        wait_for_line(first, "READY")
        spawn.run(WRITER, name, "transfer 100", KEY, str(port))
        captured = spy.recv(65536)
        assert "GOT transfer 100" in wait_for_line(first, "GOT")
        first.wait(10)
        # Past the clock-skew allowance: what remains replayable after a
        # restart is only what was sent in the last CLOCK_SKEW seconds before it.
        time.sleep(domain.CLOCK_SKEW + 0.5)

        # The server restarts; the attacker sends the captured datagram again.
        second = spawn(SERVER, name, KEY, str(port), "2", "2")
        wait_for_line(second, "READY")
        out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with out:
            out.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)
            out.sendto(captured, (domain.DOMAIN_GROUP, port))
        spawn.run(WRITER, name, "fresh", KEY, str(port))
        line = wait_for_line(second, "GOT")
        second.wait(10)  # it closes its mailslot before exiting
    # the fresh message arrives; the replay does not (and is counted)
    assert line.startswith("GOT fresh,-"), line
    assert line.endswith("rejected 1"), line


def test_freshness_rule():
    start = 1_000_000 * 10**9
    assert domain.fresh(start + 5 * 10**9, start, now_ns=start + 6 * 10**9)
    assert domain.fresh(start - 1 * 10**9, start, now_ns=start)  # a sender's clock a little behind
    assert not domain.fresh(start - 10 * 10**9, start, now_ns=start + 1)  # made before the restart
    assert not domain.fresh(start + 100 * 10**9, start, now_ns=start + 10 * 10**9)  # from the future
    assert not domain.fresh(start, start, now_ns=start + 31 * 10**9)  # too old
