"""The sans-I/O RPC core without processes: protocol state machine and dispatch rules."""

from __future__ import annotations

import json
import os

import pytest

from interproc import RemoteError
from interproc._rpc._dispatch import Exposed
from interproc._rpc._protocol import (
    AVAILABLE,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    Call,
    Failure,
    Fault,
    Protocol,
    Result,
    Send,
    decode,
)


class Target:
    config = {"secret": 1}  # a public attribute, not a method

    def __init__(self) -> None:
        self.run = os.system  # an instance attribute: never exposed

    def add(self, a, b):
        return a + b

    def _private(self):
        return "private"

    def __secret(self):
        return "mangled"

    @property
    def prop(self):
        return 1

    @staticmethod
    def static(x):
        return x

    @classmethod
    def klass(cls):
        return cls.__name__


ESCAPES = ["__class__", "__globals__", "__init__", "__init__.__globals__", "add.__globals__",
           "add.__func__.__globals__", "_private", "_Target__secret", "__getattribute__", "__reduce_ex__",
           "__dict__", "config", "prop", "run", "add.__code__", "__class__.__base__.__subclasses__",
           "", " add", "add ", "ADD", "getattr"]


@pytest.mark.parametrize("name", ESCAPES)
def test_only_public_methods_are_reachable(name):
    ex = Exposed(Target())
    with pytest.raises(Fault) as info:
        ex.resolve(name, [], {})
    assert info.value.code == METHOD_NOT_FOUND


def test_public_methods_table():
    ex = Exposed(Target())
    assert ex.names == ["add", "klass", "static"]
    assert ex.resolve("add", [1, 2], {}).fn(1, 2) == 3


def test_params_are_checked_against_the_signature():
    ex = Exposed(Target())
    for args, kwargs in [([1], {}), ([1, 2, 3], {}), ([], {"a": 1, "c": 2}), ([1], {"a": 1})]:
        with pytest.raises(Fault) as info:
            ex.resolve("add", args, kwargs)
        assert info.value.code == INVALID_PARAMS
    ex.resolve("add", [], {"a": 1, "b": 2})


def test_a_module_exposes_its_own_functions():
    import types

    mod = types.ModuleType("calcmod")
    exec("import os\ndef add(a, b): return a + b\ndef _hidden(): pass\n", mod.__dict__)
    assert Exposed(mod).names == ["add"]  # not os, not _hidden


def _pair(codec="json"):
    return Protocol(codec=codec), Protocol(codec=codec)


@pytest.mark.parametrize("codec", AVAILABLE)
def test_round_trip_and_out_of_order_replies(codec):
    client, server = _pair(codec)
    r1, d1 = client.request("add", (1, 2))
    r2, d2 = client.request("add", (), {"a": 3, "b": 4})
    (c1,), (c2,) = server.receive(d1), server.receive(d2)
    assert isinstance(c1, Call) and c1.args == [1, 2] and c2.kwargs == {"a": 3, "b": 4}
    # answered in reverse order: each reply finds its own request
    (e2,) = client.receive(server.reply(c2, 7))
    (e1,) = client.receive(server.reply(c1, 3))
    assert (type(e1), e1.id, e1.value) == (Result, r1, 3)
    assert (type(e2), e2.id, e2.value) == (Result, r2, 7)
    assert client.pending() == set()


def test_a_cancelled_calls_late_reply_is_discarded():
    client, server = _pair()
    rid, data = client.request("add", (1, 2))
    (call,) = server.receive(data)
    client.cancel(rid)
    assert client.receive(server.reply(call, 3)) == []


def test_errors_carry_type_message_and_traceback():
    client, server = _pair()
    rid, data = client.request("lookup", ("k",))
    (call,) = server.receive(data)
    try:
        {}["k"]
    except KeyError as exc:
        answer = server.fail(call, exc, "Traceback ...lookup...")
    (ev,) = client.receive(answer)
    assert isinstance(ev, Failure) and isinstance(ev.error, RemoteError)
    assert ev.error.remote_type == "KeyError" and "lookup" in ev.error.traceback_text


def test_batch_answers_in_one_message_when_every_call_is_answered():
    client, server = _pair()
    ids, data = client.batch([("add", (1, 2), None, False), ("note", ("x",), None, True),
                              ("add", (3, 4), None, False)])
    assert ids[1] is None
    calls = server.receive(data)
    assert [c.notification for c in calls] == [False, True, False]
    assert server.reply(calls[0], 3) is None  # one still to come
    assert server.reply(calls[1], None) is None  # a notification: never answered
    events = client.receive(server.reply(calls[2], 7))
    assert sorted((e.id, e.value) for e in events) == [(ids[0], 3), (ids[2], 7)]


def test_batch_of_notifications_gets_no_answer_at_all():
    client, server = _pair()
    _, data = client.batch([("note", (1,), None, True), ("note", (2,), None, True)])
    calls = server.receive(data)
    assert all(isinstance(c, Call) for c in calls)
    assert [server.reply(c, None) for c in calls] == [None, None]


@pytest.mark.parametrize("text,code", [(b"{not json", -32700), (b"[]", -32600), (b'{"jsonrpc":"1.0","method":"x","id":1}', -32600),
                                       (b'{"jsonrpc":"2.0","method":"x","params":3,"id":1}', -32600),
                                       (b'{"jsonrpc":"2.0","method":"x","id":{"a":1}}', -32600), (b"\xff\x00", -32700)])
def test_bad_input_is_answered_with_an_error_object(text, code):
    (ev,) = Protocol().receive(text)
    assert isinstance(ev, Send)
    answer = json.loads(ev.data)
    assert answer["error"]["code"] == code and answer["id"] is None


def test_hello_negotiates_the_binary_codec():
    if "msgpack" not in AVAILABLE:
        pytest.skip("neither msgspec nor msgpack is installed")
    client, server = Protocol(), Protocol()
    assert client.codec == server.codec == "json"
    rid, data = client.hello()
    (send,) = server.receive(data)
    assert server.codec == "msgpack"
    (ev,) = client.receive(send.data)
    assert isinstance(ev, Result) and client.codec == "msgpack"
    rid, data = client.request("add", (1, 2))
    assert data[:1] not in (b"{", b"[")  # binary now
    (call,) = server.receive(data)
    (ev,) = client.receive(server.reply(call, 3))
    assert ev.value == 3


def test_a_peer_without_the_binary_codec_stays_on_json():
    client, server = Protocol(), Protocol(codecs=("json",))
    _, data = client.hello()
    (send,) = server.receive(data)
    client.receive(send.data)
    assert client.codec == server.codec == "json"


def test_unencodable_result_is_an_internal_error():
    client, server = _pair()
    _, data = client.request("f")
    (call,) = server.receive(data)
    (ev,) = client.receive(server.reply(call, object()))
    assert isinstance(ev, Failure) and ev.error.code == -32603


def test_decode_tells_the_codecs_apart():
    assert decode(b' {"a": 1}') == {"a": 1}
    if "msgpack" in AVAILABLE:
        import msgpack

        assert decode(msgpack.packb({"a": 1})) == {"a": 1}
    with pytest.raises(ValueError):
        decode(b"")
