"""The shared Channel conformance suite (tests/channel_checks.py) over serial.

Each pair is two SerialChannels on the two ends of a real pty null-modem
(``pty_pair``: ptys plus a relay process).  ``check_byte_stream`` does not
apply: a serial line has no end-of-file, so a byte-stream reader cannot see
the writer close (the framed channel has a CLOSE frame for that).
"""

from __future__ import annotations

import pytest

import interproc.serial as serial

channel_checks = pytest.importorskip(
    "channel_checks", reason="tests/channel_checks.py (the shared conformance suite) is not on this branch yet"
)


@pytest.fixture
def make_pair():
    cables: list[serial.PtyPair] = []

    def make() -> tuple[serial.SerialChannel, serial.SerialChannel]:
        cable = serial.pty_pair()
        cables.append(cable)
        a = serial.open_channel(cable.a)
        b = serial.open_channel(cable.b)
        return a, b

    try:
        yield make
    finally:
        for cable in cables:
            cable.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("check", channel_checks.CHECKS, ids=lambda c: c.__name__)
def test_serial_channel_conformance(make_pair, check):
    check(make_pair, duplex=True)
