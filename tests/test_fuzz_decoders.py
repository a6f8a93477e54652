"""Property-based fuzzing of every decoder that reads a peer's bytes.

Each decoder gets arbitrary input (and, where a valid form exists, valid
input cut into arbitrary pieces and then mutated).  The properties: valid
input round-trips; anything else is a ``ProtocolError`` (or the decoder's
documented drop counter) — never another exception, a hang, a crash, or
memory that follows what a peer *announced* rather than what it sent.

Budget: ``INTERPROC_FUZZ_EXAMPLES`` examples per property (default 150, a
few seconds in CI); set it to 20000 or more for a long run.  The
coverage-guided run (atheris, libFuzzer) is ``tests/fuzz/atheris_decoders.py``.
"""

from __future__ import annotations

import json
import os
import struct

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="pip install 'interproc[fuzz]'")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import interproc  # noqa: E402
from interproc import _codec, _framing, _handshake  # noqa: E402
from interproc._serial import _cobs as _framing_cobs  # noqa: E402
from interproc._mailslot import _domain  # noqa: E402

EXAMPLES = int(os.environ.get("INTERPROC_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

messages = st.lists(st.binary(max_size=40000), max_size=6)
cuts = st.lists(st.integers(min_value=1, max_value=70000), min_size=1, max_size=20)


def _chunks(data: bytes, sizes: list[int]):
    i = 0
    while i < len(data):
        for n in sizes:
            yield data[i:i + n]
            i += n
            if i >= len(data):
                return


def _storage(dec: _framing.FrameDecoder) -> int:
    chunks = dec._chunks or []
    return len(dec._buf) + len(dec._big) + sum(len(c) for c in chunks)


# -- length-prefixed framing (pipes, unix://, tcp://) ---------------------------------

@FUZZ
@given(messages, cuts)
def test_framing_roundtrip_in_any_pieces(msgs, sizes):
    wire = b"".join(b"".join(bytes(p) for p in _framing.encode(m)) for m in msgs)
    dec = _framing.FrameDecoder()
    out = []
    for piece in _chunks(wire, sizes):
        dec.feed(piece)
        while (f := dec.next_frame()) is not None:
            out.append(f)
    dec.eof()
    assert out == msgs


@FUZZ
@given(st.binary(max_size=5000), cuts, st.integers(min_value=0, max_value=1 << 30))
def test_framing_garbage_is_protocol_error_and_memory_follows_bytes(data, sizes, limit):
    dec = _framing.FrameDecoder(limit)
    fed = 0
    try:
        for piece in _chunks(data, sizes):
            dec.feed(piece)
            fed += len(piece)
            while dec.next_frame() is not None:
                pass
            # what the decoder holds follows the bytes that came, not the lengths announced
            assert _storage(dec) <= 2 * fed + 2 * _framing._SCRATCH
        dec.eof()
    except interproc.ProtocolError:
        pass


@FUZZ
@given(st.integers(min_value=_framing._DIRECT, max_value=1 << 40), st.binary(max_size=200000))
def test_announced_length_is_not_allocated(n, body):
    dec = _framing.FrameDecoder(1 << 41)
    dec.feed(_framing.HEADER.pack(n) + body)
    assert _storage(dec) <= 2 * len(body) + 2 * _framing._SCRATCH
    if len(body) >= n:
        assert dec.next_frame() == body[:n]


# -- COBS serial framing --------------------------------------------------------------

@FUZZ
@given(st.lists(st.binary(max_size=600), max_size=6), cuts, st.binary(max_size=300))
def test_cobs_roundtrip_and_garbage(payloads, sizes, junk):
    dec = _framing_cobs.FrameDecoder(max_payload=1024)
    wire = junk + b"\0" + b"".join(_framing_cobs.encode_frame(p) for p in payloads)
    got = []
    for piece in _chunks(wire, sizes):
        got.extend(dec.feed(piece))  # bad chunks are counted in .dropped, never raised
    assert [f.payload for f in got][-len(payloads):] == payloads if payloads else True
    assert dec.pending <= _framing_cobs.max_encoded_size(1024) + 1


@FUZZ
@given(st.binary(max_size=3000))
def test_cobs_decode_raises_only_cobs_error(data):
    try:
        _framing_cobs.cobs_decode(data)
    except _framing_cobs.CobsError:
        pass


# -- the handshake -----------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=30,
)


def _hello_like(draw_dict):
    return json.dumps(draw_dict).encode()


@FUZZ
@given(st.one_of(st.binary(max_size=5000),
                 json_values.map(lambda v: json.dumps(v).encode()),
                 st.dictionaries(st.sampled_from(["proto", "kind", "challenge", "proof", "x"]), json_values,
                                 max_size=5).map(_hello_like),
                 st.integers(min_value=1, max_value=4000).map(lambda n: b"[" * n + b"]" * n)),
       st.booleans())
def test_server_handshake_takes_any_hello(frame, with_key):
    hs = _handshake.ServerHandshake(kind="socket", authkey=b"k" if with_key else None)
    hs.greeting()
    try:
        hs.receive(frame)
    except (interproc.ProtocolError, interproc.PermissionDenied):
        return
    assert hs.done and not (with_key and not hs.authenticated)


@FUZZ
@given(st.lists(st.one_of(st.binary(max_size=600), json_values.map(lambda v: json.dumps(v).encode())),
                min_size=1, max_size=3), st.booleans())
def test_client_handshake_takes_any_server_frames(frames, with_key):
    hs = _handshake.ClientHandshake(kind="socket", authkey=b"k" if with_key else None)
    try:
        for frame in frames:
            hs.receive(frame)
            if hs.done:
                break
    except (interproc.ProtocolError, interproc.PermissionDenied):
        pass


# -- codecs --------------------------------------------------------------------------------

@FUZZ
@given(st.one_of(st.binary(max_size=3000),
                 st.integers(min_value=1, max_value=200000).map(lambda n: b"[" * n),
                 st.integers(min_value=1, max_value=200000).map(lambda n: b'{"a":' * n)))
def test_json_decode_any_bytes(data):
    try:
        _codec.CODECS["json"].decode(data)
    except interproc.ProtocolError:
        pass


@FUZZ
@given(st.one_of(st.binary(max_size=3000),
                 st.integers(min_value=1, max_value=200000).map(lambda n: b"\x91" * n),
                 st.integers(min_value=1, max_value=3000).map(lambda n: b"\x81" * n + b"\x01" * (2 * n))))
def test_msgpack_decode_any_bytes(data):
    pytest.importorskip("msgpack")
    try:
        _codec.CODECS["msgpack"].decode(data)
    except interproc.ProtocolError:
        pass


@FUZZ
@given(json_values)
def test_codecs_roundtrip(value):
    assert _codec.CODECS["json"].decode(_codec.CODECS["json"].encode(value)) == value


# -- domain mailslot datagrams -----------------------------------------------------------

@FUZZ
@given(st.binary(max_size=600), st.sampled_from([b"key", None]))
def test_mailslot_datagram_any_bytes(raw, key):
    try:
        _domain.decode_stamped(raw, key)
    except interproc.ProtocolError:
        pass


@FUZZ
@given(st.text(alphabet="abcdefghij.-_", min_size=1, max_size=30), st.binary(max_size=424),
       st.binary(min_size=8, max_size=8), st.integers(min_value=0, max_value=2**64 - 1),
       st.integers(min_value=0, max_value=10**6))
def test_mailslot_signed_datagram_roundtrip_and_any_flip(name, data, sender, seq, flip):
    raw = _domain.encode(name, data, sender, seq, b"key")
    assert _domain.decode(raw, b"key") == (name, sender, seq, data)
    bad = bytearray(raw)
    bad[flip % len(bad)] ^= 1 << (flip % 8)
    with pytest.raises(interproc.ProtocolError):
        _domain.decode(bytes(bad), b"key")


# -- shm:// ring records (hostile bytes written into the shared segment) -------------------

SHM_FUZZ = r"""
import os, random, struct, sys, threading, interproc
name, rounds, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
lst = interproc.listen(f"shm://{name}?capacity=4096")
box = {}
t = threading.Thread(target=lambda: box.setdefault("s", lst.accept(timeout=10)))
t.start()
c = interproc.connect(f"shm://{name}", timeout=10)
t.join()
s = box["s"]
buf = c._seg.buf
cap = c.capacity
outcomes = {}
for i in range(rounds):
    # a fresh pair every 50 rounds: a ring found corrupted stays broken
    if i and i % 50 == 0:
        c.close(); s.close()
        t = threading.Thread(target=lambda: box.__setitem__("s", lst.accept(timeout=10)))
        t.start(); c = interproc.connect(f"shm://{name}", timeout=10); t.join(); s = box["s"]
        buf = c._seg.buf
    try:
        s.send(os.urandom(rng.randrange(0, 200)), timeout=0)
    except interproc.InterprocError:
        pass
    what = rng.randrange(4)
    if what == 0:   # garbage in the record area
        at = 4096 + rng.randrange(2 * cap - 8)
        buf[at:at + 8] = os.urandom(8)
    elif what == 1:  # a head cursor anywhere
        struct.pack_into("<Q", buf, rng.choice((256, 512)), rng.getrandbits(64))
    elif what == 2:  # a tail cursor anywhere
        struct.pack_into("<Q", buf, rng.choice((256, 512)) + 64, rng.getrandbits(64))
    else:            # a record header claiming any length / tag
        at = 4096 + rng.randrange(0, 2 * cap - 8, 8)
        struct.pack_into("<II", buf, at, rng.getrandbits(32), rng.choice((0x4753, 0x4450, rng.getrandbits(32))))
    for ch in (c, s):
        try:
            ch.recv(timeout=0)
            key = "message"
        except interproc.ProtocolError:
            key = "ProtocolError"
        except interproc.Timeout:
            key = "Timeout"
        except interproc.ChannelClosed:
            key = "ChannelClosed"
        outcomes[key] = outcomes.get(key, 0) + 1
c.close(); s.close(); lst.close()
print("OUTCOMES", sorted(outcomes.items()), flush=True)
"""


def test_shm_ring_survives_hostile_writes(spawn, name):
    rounds = max(200, EXAMPLES * 2)
    out = spawn.run(SHM_FUZZ, name, str(rounds), str(EXAMPLES), timeout=50)
    assert "OUTCOMES" in out  # the child did not crash (a segfault fails spawn.run)
    assert "ProtocolError" in out  # and the corruption was noticed, not swallowed
