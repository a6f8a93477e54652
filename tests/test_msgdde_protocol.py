"""The sans-I/O cores of DDE and window messages, without processes or sockets; and garbage from peers."""

from __future__ import annotations

import json
import os
import socket
import struct

import pytest

import interproc
from interproc import dde, messages
from interproc._dde._protocol import ClientConversation, Execute, Poke, ServerConversation, Store, Update


def _server(topic: str = "Stocks") -> tuple[Store, ServerConversation]:
    store = Store("Prices")
    store.topics[topic] = {"ACME": ("TEXT", "1")}
    conv = ServerConversation(store)
    conv.receive(json.dumps({"id": 1, "op": "initiate", "service": "prices", "topic": topic}).encode())
    assert json.loads(conv.next_frame())["ok"] is True  # service names compare without case
    return store, conv


def _drain(conv: ServerConversation) -> list[dict]:
    out = []
    while (frame := conv.next_frame()) is not None:
        out.append(json.loads(frame))
    return out


def test_newest_value_wins_and_superseded_values_are_counted():
    _, conv = _server()
    conv.receive(b'{"id": 2, "op": "advise", "item": "ACME", "hot": true}')
    (reply,) = _drain(conv)
    for i in range(5):
        conv.changed("Stocks", "ACME", ("TEXT", str(i)))
    (update,) = _drain(conv)
    assert (update["link"], update["value"], update["dropped"], update["seq"]) == (reply["link"], "4", 4, 1)
    conv.changed("Stocks", "ACME", ("TEXT", "5"))
    assert [u["value"] for u in _drain(conv)] == ["5"]


def test_acknowledged_link_sends_every_value_one_at_a_time():
    _, conv = _server()
    conv.receive(b'{"id": 2, "op": "advise", "item": "ACME", "hot": true, "ack": true}')
    link = _drain(conv)[0]["link"]
    for i in range(3):
        conv.changed("Stocks", "ACME", ("TEXT", str(i)))
    got = []
    for _ in range(3):
        frames = _drain(conv)
        assert len(frames) == 1  # the next one waits for the ack
        got.append(frames[0]["value"])
        conv.receive(json.dumps({"op": "ack", "link": link}).encode())
    assert got == ["0", "1", "2"] and _drain(conv) == []


def test_warm_link_carries_no_value_and_poke_execute_are_events():
    _, conv = _server()
    conv.receive(b'{"id": 2, "op": "advise", "item": "ACME", "hot": false}')
    _drain(conv)
    conv.changed("Stocks", "ACME", ("TEXT", "9"))
    (changed,) = _drain(conv)
    assert changed["op"] == "changed" and "value" not in changed
    assert conv.receive(b'{"id": 3, "op": "poke", "item": "X", "format": "BINARY", "value": "AAE="}') == [
        Poke(3, "X", b"\x00\x01", "BINARY")]
    assert conv.receive(b'{"id": 4, "op": "execute", "command": "[Go]"}') == [Execute(4, "[Go]")]
    conv.answer(4, refused="no")
    assert _drain(conv)[0]["error"] == "PermissionDenied"


@pytest.mark.parametrize("frame", [b"not json", b"[1]", b'{"id": 1, "op": "request", "item": "ACME"}',
                                   b'{"id": "x", "op": "initiate"}'])
def test_server_conversation_rejects_garbage(frame):
    conv = ServerConversation(Store("Prices"))
    with pytest.raises(interproc.ProtocolError):
        conv.receive(frame)


def test_client_conversation_parses_updates_and_rejects_garbage():
    update = ClientConversation.receive(b'{"op":"data","link":1,"item":"A","format":"TEXT","value":"v","seq":1,"dropped":0}')
    assert update == Update(1, "A", "v", 1, 0)
    for bad in (b'{"op":"data","link":1}', b'{"id":1}', b'{"op":"data","link":1,"item":"A","format":"X","value":"!!","seq":1,"dropped":0}'):
        with pytest.raises(interproc.ProtocolError):
            ClientConversation.receive(bad)


def _raw(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(path)
    return s


def _send(s: socket.socket, body: bytes) -> None:
    s.sendall(struct.pack(">Q", len(body)) + body)


def _recv(s: socket.socket) -> bytes:
    def exact(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            assert chunk, "closed"
            buf += chunk
        return buf

    (n,) = struct.unpack(">Q", exact(8))
    return exact(n)


def test_garbage_to_a_dde_server_gets_a_protocol_error_and_others_go_on(name):
    with dde.Server(name) as srv:
        srv.set("Stocks", "ACME", "1")
        srv.start()
        s = _raw(os.path.join(os.environ["INTERPROC_RUNTIME_DIR"], f"dde.{name}.sock"))
        _recv(s)
        _send(s, b'{"proto": "interproc/1", "kind": "socket"}')
        _send(s, b"\xff garbage")
        answer = json.loads(_recv(s))
        assert answer["op"] == "error" and answer["error"] == "ProtocolError"
        assert s.recv(1) == b""  # and it hung up on us
        s.close()
        assert srv.protocol_errors == 1
        with dde.connect(name, "Stocks", timeout=5) as conv:
            assert conv.request("ACME") == "1"


def test_garbage_to_a_window_gets_a_protocol_error_and_others_go_on(name):
    with messages.Window(name) as win:
        s = _raw(os.path.join(os.environ["INTERPROC_RUNTIME_DIR"], f"msgwin.{name}.sock"))
        _recv(s)
        _send(s, b'{"proto": "interproc/1", "kind": "socket"}')
        _send(s, b"\x07short")
        answer = _recv(s)
        assert answer[0] == 0x81 and answer[1] == 5 and b"shorter than" in answer
        assert s.recv(1) == b""
        s.close()
        assert win.protocol_errors == 1
        messages.post_message(name, 0x400, 1)
        assert win.pump() == 1
