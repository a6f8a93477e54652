"""What a pty cannot do is a clear, documented error (issue 10): data bits it
refuses, modem lines and break it does not have.  Real ptys from pty_pair()."""

from __future__ import annotations

import errno

import pytest

pytest.importorskip("serial")

from interproc import serial  # noqa: E402


def test_pty_refuses_7_data_bits_and_parity_with_a_clear_value_error():
    with serial.pty_pair() as cable:
        for _ in range(2):  # the kernel ignores the first attempt and fails the second: both are refused
            with pytest.raises(ValueError, match=r"refuses 7 data bits.*a pty has no line"):
                serial.open(cable.a, bytesize=7)
            with pytest.raises(ValueError, match=r"refuses 8 data bits, parity E.*a pty has no line"):
                serial.open(cable.a, parity="E")
        with serial.open(cable.a, stopbits=2, baudrate=9600) as port:  # accepted and ignored
            assert port.write(b"ok") == 2
        with serial.open(cable.a) as port:  # the refused open left nothing locked
            assert not port.closed


def test_pty_has_no_modem_lines_and_no_break():
    with serial.pty_pair() as cable, serial.open(cable.a) as port:
        with pytest.raises(OSError, match="is a pty: it has no modem lines") as info:
            port.modem_lines
        assert info.value.errno == errno.ENOTTY
        with pytest.raises(OSError, match="is a pty: it has no line to send a break on") as info:
            port.send_break()
        assert info.value.errno == errno.ENOTTY


def test_a_port_dropped_unclosed_warns():
    import gc
    import warnings

    with serial.pty_pair() as cable:
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always", ResourceWarning)
            serial.open(cable.a)
            gc.collect()
            with serial.open(cable.a):  # the dropped one was released: the port opens again
                pass
            gc.collect()
        msgs = [str(w.message) for w in got if issubclass(w.category, ResourceWarning)]
        assert msgs == [f"unclosed SerialPort {cable.a!r}"]
