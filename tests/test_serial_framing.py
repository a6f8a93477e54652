"""The COBS + CRC-32 frame codec on its own: bytes in, frames out, no I/O."""

from __future__ import annotations

import random
import zlib

import pytest

from interproc._serial._cobs import (
    CLOSE,
    DATA,
    CobsError,
    Frame,
    FrameDecoder,
    cobs_decode,
    cobs_encode,
    encode_frame,
    max_encoded_size,
)

# Reference vectors (the usual COBS examples: Cheshire & Baker, Wikipedia).
VECTORS = [
    (b"", b"\x01"),
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
    (bytes(range(0, 255)), b"\x01\xff" + bytes(range(1, 255))),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
    (bytes(range(2, 256)) + b"\x00", b"\xff" + bytes(range(2, 256)) + b"\x01\x01"),
    (bytes(range(3, 256)) + b"\x00\x01", b"\xfe" + bytes(range(3, 256)) + b"\x02\x01"),
]


@pytest.mark.parametrize("raw,enc", VECTORS)
def test_cobs_reference_vectors(raw, enc):
    assert cobs_encode(raw) == enc
    assert cobs_decode(enc) == raw


def test_cobs_roundtrip_random():
    rng = random.Random(1)
    for _ in range(500):
        n = rng.choice([0, 1, 2, 253, 254, 255, 508, rng.randrange(2000)])
        raw = bytes(rng.choice([0, 0, rng.randrange(256)]) for _ in range(n))
        enc = cobs_encode(raw)
        assert 0 not in enc
        assert len(enc) <= len(raw) + len(raw) // 254 + 1
        assert cobs_decode(enc) == raw


@pytest.mark.parametrize("bad", [b"", b"\x05\x11\x22", b"\x03\x11\x00", b"\x00"])
def test_cobs_decode_rejects_invalid(bad):
    with pytest.raises(CobsError):
        cobs_decode(bad)


def test_frame_layout_is_documented_format():
    frame = encode_frame(b"hi")
    assert frame[0] == 0 and frame[-1] == 0 and 0 not in frame[1:-1]
    body = cobs_decode(frame[1:-1])
    assert body[0] == DATA and body[1:3] == b"hi"
    assert int.from_bytes(body[3:], "little") == zlib.crc32(bytes([DATA]) + b"hi")


def test_roundtrip_many_frames_fed_byte_by_byte():
    rng = random.Random(2)
    msgs = [bytes(rng.randrange(256) for _ in range(rng.randrange(600))) for _ in range(50)] + [b""]
    wire = b"".join(encode_frame(m) for m in msgs) + encode_frame(b"", CLOSE)
    dec = FrameDecoder()
    out = []
    for i in range(len(wire)):
        out += dec.feed(wire[i : i + 1])
    assert out == [Frame(DATA, m) for m in msgs] + [Frame(CLOSE, b"")]
    assert dec.dropped == 0 and dec.pending == 0


def test_roundtrip_random_chunking():
    rng = random.Random(3)
    msgs = [rng.randbytes(rng.randrange(3000)) for _ in range(100)]
    wire = b"".join(encode_frame(m) for m in msgs)
    dec = FrameDecoder()
    out, pos = [], 0
    while pos < len(wire):
        step = rng.randrange(1, 700)
        out += dec.feed(memoryview(wire)[pos : pos + step])
        pos += step
    assert [f.payload for f in out] == msgs
    assert dec.dropped == 0


def _noise(rng: random.Random, zeros: bool) -> bytes:
    n = rng.randrange(1, 40)
    if zeros:
        return rng.randbytes(n)
    return bytes(rng.randrange(1, 256) for _ in range(n))


@pytest.mark.parametrize("seed", range(20))
def test_noise_between_frames_never_loses_a_good_frame(seed):
    rng = random.Random(seed)
    msgs = [rng.randbytes(rng.randrange(0, 400)) for _ in range(60)]
    first = _noise(rng, zeros=True)  # garbage before the first frame too
    wire = bytearray(first)
    bursts = [first]
    for m in msgs:
        wire += encode_frame(m)
        if rng.random() < 0.5:
            bursts.append(_noise(rng, zeros=True))
            wire += bursts[-1]
    wire += b"\0"  # a trailing burst only ends at the next delimiter
    dec = FrameDecoder()
    out = []
    pos = 0
    while pos < len(wire):
        step = rng.randrange(1, 300)
        out += dec.feed(wire[pos : pos + step])
        pos += step
    assert [f.payload for f in out] == msgs
    # Every burst with a non-zero byte is at least one junk chunk (zeros in it
    # split it into several, each counted); all-zero bursts are idle line.
    assert dec.dropped >= sum(1 for b in bursts if b.strip(b"\0"))
    assert dec.dropped >= 1


@pytest.mark.parametrize("seed", range(10))
def test_zero_free_noise_is_counted_exactly(seed):
    rng = random.Random(100 + seed)
    msgs = [rng.randbytes(rng.randrange(1, 300)) for _ in range(40)]
    wire = bytearray()
    bursts = 0
    for m in msgs:
        if rng.random() < 0.5:
            wire += _noise(rng, zeros=False)
            bursts += 1
        wire += encode_frame(m)
    dec = FrameDecoder()
    out = dec.feed(wire)
    assert [f.payload for f in out] == msgs
    assert dec.dropped == bursts


def test_corrupted_and_truncated_frames_are_dropped_and_counted():
    rng = random.Random(7)
    msgs = [rng.randbytes(rng.randrange(10, 500)) for _ in range(200)]
    wire = bytearray()
    good, bad = [], 0
    for i, m in enumerate(msgs):
        frame = bytearray(encode_frame(m))
        if i % 3 == 1:  # flip one body byte to another non-zero value
            k = rng.randrange(1, len(frame) - 1)
            frame[k] = rng.choice([v for v in range(1, 256) if v != frame[k]])
            bad += 1
        elif i % 3 == 2:  # truncated: the sender stopped mid-frame
            frame = frame[: rng.randrange(2, len(frame) - 1)]
            bad += 1
        else:
            good.append(m)
        wire += frame
    dec = FrameDecoder()
    out = dec.feed(wire)
    assert [f.payload for f in out] == good
    assert dec.dropped == bad
    assert dec.last_error


def test_oversized_frames_are_dropped_without_unbounded_buffering():
    dec = FrameDecoder(max_payload=100)
    out = dec.feed(encode_frame(b"x" * 101) + encode_frame(b"ok"))
    assert [f.payload for f in out] == [b"ok"] and dec.dropped == 1
    # Endless zero-free noise: memory stays bounded, counted once, then resync.
    for _ in range(100):
        assert dec.feed(b"\x55" * 1000) == []
        assert dec.pending <= max_encoded_size(100)
    assert dec.dropped == 2
    out = dec.feed(encode_frame(b"after"))
    assert [f.payload for f in out] == [b"after"] and dec.dropped == 2


def test_unknown_kind_is_dropped():
    body = bytes([7]) + b"future"
    body += zlib.crc32(body).to_bytes(4, "little")
    dec = FrameDecoder()
    assert dec.feed(b"\0" + cobs_encode(body) + b"\0" + encode_frame(b"now")) == [Frame(DATA, b"now")]
    assert dec.dropped == 1 and "kind" in dec.last_error


def test_short_chunks_are_dropped_idle_delimiters_are_not():
    dec = FrameDecoder()
    assert dec.feed(b"\0\0\0\0") == [] and dec.dropped == 0
    assert dec.feed(b"\x02\x01\0") == [] and dec.dropped == 1  # decodes to 2 bytes: too short


def test_encode_frame_rejects_unknown_kind():
    with pytest.raises(ValueError, match="kind"):
        encode_frame(b"", kind=9)


def test_large_frame_roundtrip():
    payload = random.Random(5).randbytes(1 << 20)
    dec = FrameDecoder()
    assert dec.feed(encode_frame(payload)) == [Frame(DATA, payload)]
