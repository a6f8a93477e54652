"""Coverage-guided fuzzing (atheris / libFuzzer) of the decoders that read peer bytes.

Not collected by pytest; run on demand::

    pip install 'interproc[fuzz]'
    PYTHONPATH=src python tests/fuzz/atheris_decoders.py -atheris_runs=200000
    PYTHONPATH=src python tests/fuzz/atheris_decoders.py -max_total_time=600 corpus_dir/

One input drives every decoder: its first byte picks the target, the rest is
the peer's bytes.  Anything but the documented error (``ProtocolError``;
``CobsError`` / the drop counter for serial frames) is a finding: libFuzzer
stops and writes the input to ``crash-*``.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from interproc import _codec, _framing, _handshake
    from interproc._serial import _cobs as _framing_cobs
    from interproc._errors import PermissionDenied, ProtocolError
    from interproc._mailslot import _domain


def _framing_target(data: bytes) -> None:
    dec = _framing.FrameDecoder(1 << 20)
    step = max(1, data[0] if data else 1)
    try:
        for i in range(0, len(data), step):
            dec.feed(data[i:i + step])
            while dec.next_frame() is not None:
                pass
            held = len(dec._buf) + len(dec._big) + sum(len(c) for c in dec._chunks or [])
            assert held <= 2 * (i + step) + 2 * _framing._SCRATCH, "memory follows an announced length"
        dec.eof()
    except ProtocolError:
        pass


def _cobs_target(data: bytes) -> None:
    dec = _framing_cobs.FrameDecoder(max_payload=512)
    dec.feed(data)
    assert dec.pending <= _framing_cobs.max_encoded_size(512) + 1
    try:
        _framing_cobs.cobs_decode(data)
    except _framing_cobs.CobsError:
        pass


def _handshake_target(data: bytes) -> None:
    for key in (None, b"k"):
        hs = _handshake.ServerHandshake(kind="socket", authkey=key)
        try:
            hs.receive(data)
        except (ProtocolError, PermissionDenied):
            pass
        client = _handshake.ClientHandshake(kind="socket", authkey=key)
        try:
            client.receive(data)
        except (ProtocolError, PermissionDenied):
            pass


def _codec_target(data: bytes) -> None:
    for name in ("json", "msgpack"):
        try:
            _codec.CODECS[name].decode(data)
        except ProtocolError:
            pass
        except ImportError:
            pass


def _mailslot_target(data: bytes) -> None:
    for key in (None, b"k"):
        try:
            _domain.decode_stamped(data, key)
        except ProtocolError:
            pass


TARGETS = [_framing_target, _cobs_target, _handshake_target, _codec_target, _mailslot_target]


def one_input(data: bytes) -> None:
    if not data:
        return
    TARGETS[data[0] % len(TARGETS)](data[1:])


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
