"""The sans-I/O framing core and handshake: bytes in, frames out, no sockets needed."""

from __future__ import annotations

import random

import pytest

from interproc import ChannelClosed, MessageTooLarge, PermissionDenied, ProtocolError
from interproc._framing import HEADER, FrameDecoder, FrameTooLarge, TruncatedMessage, as_buffer, encode
from interproc._handshake import ClientHandshake, ServerHandshake


def _wire(messages):
    return b"".join(bytes(b"".join(bytes(p) for p in encode(m))) for m in messages)


def _drain(dec):
    out = []
    while (frame := dec.next_frame()) is not None:
        out.append(frame)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_any_split_of_the_stream_gives_the_same_frames(seed):
    rng = random.Random(seed)
    msgs = [rng.randbytes(rng.choice([0, 1, 7, 100, 5000, 70000, 300000])) for _ in range(40)]
    wire = _wire(msgs)
    dec = FrameDecoder()
    got, i = [], 0
    while i < len(wire):
        if rng.random() < 0.5:  # the buffered-protocol path
            buf = dec.get_buffer()
            n = min(len(buf), rng.randint(1, 100000), len(wire) - i)
            buf[:n] = wire[i : i + n]
            dec.buffer_updated(n)
        else:  # the feed() path
            n = rng.randint(1, 100000)
            dec.feed(wire[i : i + n])
        i += n
        got.extend(_drain(dec))
    dec.eof()  # clean end: no error
    assert got == msgs


def test_huge_length_prefix_is_a_protocol_error_without_allocation():
    dec = FrameDecoder(max_size=1 << 20)
    dec.feed(HEADER.pack(2**63) + b"xx")
    with pytest.raises(FrameTooLarge) as info:
        dec.next_frame()
    assert isinstance(info.value, ProtocolError) and isinstance(info.value, MessageTooLarge)
    with pytest.raises(ProtocolError):  # and it stays broken
        dec.next_frame()


def test_frames_before_a_bad_header_are_still_delivered():
    dec = FrameDecoder(max_size=100)
    dec.feed(_wire([b"good"]) + HEADER.pack(101))
    assert dec.next_frame() == b"good"
    with pytest.raises(ProtocolError):
        dec.next_frame()


@pytest.mark.parametrize("cut", [3, 8, 12, 8 + 70000 - 1])
def test_truncated_stream_is_reported_not_delivered(cut):
    wire = _wire([b"z" * 70000])
    dec = FrameDecoder()
    dec.feed(wire[:cut])
    assert dec.next_frame() is None
    with pytest.raises(TruncatedMessage) as info:
        dec.eof()
    assert isinstance(info.value, ChannelClosed) and isinstance(info.value, ProtocolError)
    assert dec.next_frame() is None


def test_hold_keeps_application_data_for_the_real_limit():
    dec = FrameDecoder()
    dec.hold(4096)
    dec.feed(_wire([b"hello", b"q" * 100000]))
    assert dec.next_frame() == b"hello"
    assert dec.next_frame() is None  # not parsed under the handshake limit
    dec.release(1 << 20)
    assert dec.next_frame() == b"q" * 100000


def test_as_buffer_accepts_buffers_and_refuses_others():
    assert as_buffer(b"ab").tobytes() == b"ab"
    assert as_buffer(memoryview(b"abcd").cast("H")).nbytes == 4
    with pytest.raises(TypeError, match="send_obj"):
        as_buffer("text")
    with pytest.raises(MessageTooLarge):
        encode(b"x" * 11, max_size=10)


def _run(server, client):
    reply = client.receive(server.greeting())
    verdict = server.receive(reply)
    if verdict is not None:
        client.receive(verdict)
    return server, client


def test_handshake_with_and_without_authkey():
    s, c = _run(ServerHandshake(kind="socket"), ClientHandshake(kind="socket"))
    assert s.done and c.done and not s.authenticated
    s, c = _run(ServerHandshake(kind="socket", authkey=b"k"), ClientHandshake(kind="socket", authkey=b"k"))
    assert s.authenticated and c.authenticated
    with pytest.raises(PermissionDenied, match="wrong key"):
        _run(ServerHandshake(kind="socket", authkey=b"k"), ClientHandshake(kind="socket", authkey=b"other"))
    with pytest.raises(PermissionDenied, match="requires an authkey"):
        _run(ServerHandshake(kind="socket", authkey=b"k"), ClientHandshake(kind="socket"))


def test_handshake_rejects_strangers():
    s = ServerHandshake(kind="pipe")
    for junk in (b"GET / HTTP/1.1", b"[]", b'{"proto": "other/9"}', b'{"kind": "socket"}'):
        with pytest.raises(ProtocolError):
            s.receive(junk)
    # a forged server proof is caught by the client
    c = ClientHandshake(kind="socket", authkey=b"k")
    c.receive(ServerHandshake(kind="socket", authkey=b"k").greeting())
    with pytest.raises(PermissionDenied, match="does not know the key"):
        c.receive(b'{"status": "ok", "proof": "00"}')
