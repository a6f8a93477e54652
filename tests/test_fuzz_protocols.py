"""Property-based fuzzing of the protocol decoders that came after the
framing layer: RPC (JSON-RPC 2.0 over frames and over lines), DDE
conversations and window messages.  Each takes whatever a peer sends.

Properties: a server-side decoder answers junk with an error reply or
``ProtocolError``; a client-side decoder raises ``ProtocolError`` (or the
error the reply names) — never ``RecursionError``, ``KeyError``,
``TypeError`` or any other crash of the caller.  Budget as in
``test_fuzz_decoders.py`` (``INTERPROC_FUZZ_EXAMPLES``).
"""

from __future__ import annotations

import json
import os

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="pip install 'interproc[fuzz]'")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import interproc  # noqa: E402
from interproc._dde import _protocol as dde  # noqa: E402
from interproc._messages import _protocol as wm  # noqa: E402
from interproc._rpc import _lines, _protocol as rpc  # noqa: E402

EXAMPLES = int(os.environ.get("INTERPROC_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=25,
)
deep = st.integers(min_value=1, max_value=20000).map(lambda n: b"[" * n + b"]" * n)
deep_obj = st.integers(min_value=1, max_value=20000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n)


def _objects(keys, values=json_values):
    return st.dictionaries(st.sampled_from(keys), values, max_size=len(keys)).map(lambda d: json.dumps(d).encode())


# -- RPC ------------------------------------------------------------------------------------

RPC_KEYS = ["jsonrpc", "method", "params", "id", "result", "error"]
rpc_frames = st.one_of(st.binary(max_size=2000), deep, deep_obj, _objects(RPC_KEYS),
                       st.lists(_objects(RPC_KEYS), max_size=4).map(lambda xs: b"[" + b",".join(xs) + b"]"))


@FUZZ
@given(rpc_frames, st.sampled_from(rpc.AVAILABLE))
def test_rpc_protocol_takes_any_frame(frame, codec):
    # Both roles live in one Protocol: requests make Call events, replies
    # settle pending calls, junk makes an error reply.  Never an exception.
    proto = rpc.Protocol(codec=codec)
    proto.request("f", [1])
    events = proto.receive(frame)
    assert isinstance(events, list)


@FUZZ
@given(st.lists(st.binary(max_size=300), max_size=12), st.integers(min_value=1, max_value=256))
def test_rpc_line_decoder_bounds_a_line(pieces, max_line):
    dec = _lines.LineDecoder(max_line=max_line)
    try:
        for piece in pieces:
            for line in dec.feed(piece):
                assert b"\n" not in line
            assert len(dec._buf) <= max_line + len(piece)  # what it holds follows the limit
    except interproc.ProtocolError:
        pass


# -- DDE --------------------------------------------------------------------------------------

DDE_KEYS = ["op", "id", "link", "service", "topic", "item", "format", "value", "hot", "ack", "shm",
            "command", "ok", "seq", "dropped", "message"]
DDE_OPS = st.sampled_from(["initiate", "request", "advise", "unadvise", "poke", "execute", "ack",
                           "data", "changed", "error", "x"])
dde_frames = st.one_of(
    st.binary(max_size=1000), deep, deep_obj, _objects(DDE_KEYS),
    st.fixed_dictionaries({"op": DDE_OPS}, optional={k: json_values for k in DDE_KEYS[1:]})
    .map(lambda d: json.dumps(d).encode()),
)


@FUZZ
@given(st.lists(dde_frames, min_size=1, max_size=4))
def test_dde_server_conversation_takes_any_frames(frames):
    store = dde.Store("svc")
    store.topics["t"] = {"i": ("CF_TEXT", "v")}
    conv = dde.ServerConversation(store)
    conv.receive(json.dumps({"id": 1, "op": "initiate", "service": "svc", "topic": "t"}).encode())
    for frame in frames:
        try:
            conv.receive(frame)
        except interproc.ProtocolError:
            return


@FUZZ
@given(dde_frames)
def test_dde_client_conversation_takes_any_frame(frame):
    try:
        dde.ClientConversation.receive(frame)
    except interproc.ProtocolError:
        pass


# -- window messages -----------------------------------------------------------------------------

wm_frames = st.one_of(
    st.binary(max_size=300),
    st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
              st.integers(-2**63, 2**63 - 1), st.integers(-2**63, 2**63 - 1),
              st.one_of(st.binary(max_size=200), deep, deep_obj, json_values.map(lambda v: json.dumps(v).encode())))
    .map(lambda t: wm.HEADER.pack(*t[:6]) + t[6]),
)


@FUZZ
@given(wm_frames)
def test_window_core_takes_any_frame(frame):
    core = wm.WindowCore(max_queue=4)
    try:
        core.receive(None, frame, 1, 1, 0.0)
    except interproc.ProtocolError:
        pass


@FUZZ
@given(wm_frames)
def test_window_reply_decoding_raises_only_interproc_errors(frame):
    try:
        wm.SenderCore.reply_id(frame)
        wm.SenderCore.result(frame, "w")
    except interproc.InterprocError:
        pass
