"""DDE over NATS: items in a JetStream key-value bucket, links as watches (real nats-server,
the DDE server in another process)."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest

pytest.importorskip("nats")

from conftest import wait_for_line  # noqa: E402
from nats_server import NatsServer, nats_server  # noqa: E402,F401  (the fixture)

from interproc import _nats, dde  # noqa: E402
from interproc._dde._nats import bucket_name, item_key  # noqa: E402
from interproc._errors import AlreadyExists, ChannelClosed, NotFound, PermissionDenied, RemoteError  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_connections():
    yield
    _nats.close_all()


SERVER = """
import sys
from interproc import dde
url, service = sys.argv[1], sys.argv[2]
srv = dde.Server(service, host=url)
srv.set("Stocks", "ACME", "101.5")
srv.set("Stocks", "a.b", "dotted")
srv.set("Stocks", "a=2Eb", "lookalike")
srv.set("Stocks", "*", b"\\x00star")
def on_poke(topic, item, value):
    if item == "locked":
        return False
    if item == "boom":
        raise KeyError(item)
srv.on_poke = on_poke
srv.on_execute = lambda topic, command: f"{topic}:{command.upper()}"
srv.start()
print("READY", flush=True)
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == "set":
        srv.set("Stocks", cmd[1], cmd[2])
    elif cmd[0] == "close":
        srv.close()
    print("OK", flush=True)
srv.close()
"""


class Values:
    """What a link's callback got, waited for without a timed assertion."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.got: list = []

    def __call__(self, item, value=None) -> None:
        with self.cond:
            self.got.append(value)
            self.cond.notify_all()

    def wait_for(self, want, timeout: float = 15) -> list:
        with self.cond:
            self.cond.wait_for(lambda: want in self.got, timeout)
            return list(self.got)


def _server(spawn, url: str, service: str, env: dict | None = None):
    proc = spawn(SERVER, url, service, stdin=subprocess.PIPE, env=env)
    wait_for_line(proc, "READY")
    return proc


def _stop(proc) -> None:
    proc.stdin.close()  # the server closes and exits (its socket file goes with it)
    proc.wait(15)


def _tell(proc, line: str) -> None:
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    wait_for_line(proc, "OK")


def test_cold_hot_and_warm_links_poke_and_execute_across_processes(nats_server, spawn, name):
    srv = _server(spawn, nats_server.url, name)
    with dde.connect(name, "Stocks", host=nats_server.url, timeout=5) as conv:
        assert conv.request("ACME") == "101.5"  # cold link: a get from the bucket
        assert conv.request("*") == b"\x00star"  # bytes keep their format
        assert conv.request("a.b") == "dotted" and conv.request("a=2Eb") == "lookalike"  # no collision
        assert conv.request("TopicItemList").split("\t") == ["*", "ACME", "a.b", "a=2Eb"]
        with pytest.raises(NotFound):
            conv.request("nothing")
        hot, warm = Values(), Values()
        conv.advise("ACME", callback=hot)
        conv.advise("ACME", hot=False, callback=warm)
        assert hot.wait_for("101.5") == ["101.5"]  # the watch replays the current value
        _tell(srv, "set ACME 102")
        conv.poke("ACME", "103")  # accepted: stored and advised
        assert hot.wait_for("103")[-1] == "103"
        assert "102" in hot.got or hot.got.count("103") == 1  # newest wins, never reordered
        assert warm.got and set(warm.got) == {None}  # warm: that it changed, not the value
        assert conv.execute("go") == "Stocks:GO"
        with pytest.raises(PermissionDenied):
            conv.poke("locked", "x")
        with pytest.raises(RemoteError) as info:
            conv.poke("boom", "x")
        assert info.value.remote_type == "KeyError"
    with pytest.raises(NotFound):
        dde.connect(name, "NoSuchTopic", host=nats_server.url, timeout=5)
    _stop(srv)


def test_no_service_is_not_found_at_once_and_a_second_server_is_refused(nats_server, spawn, name, tmp_path):
    with pytest.raises(NotFound):
        dde.connect(name, "Stocks", host=nats_server.url)
    other_host = tmp_path / "run"  # another runtime dir: as if on another machine
    other_host.mkdir(mode=0o700)
    srv = _server(spawn, nats_server.url, name, env={"INTERPROC_RUNTIME_DIR": str(other_host)})
    with pytest.raises(AlreadyExists):
        dde.Server(name, host=nats_server.url)
    _stop(srv)


def test_the_server_closing_ends_the_conversation(nats_server, spawn, name):
    srv = _server(spawn, nats_server.url, name)
    conv = dde.connect(name, "Stocks", host=nats_server.url, timeout=5)
    link = conv.advise("ACME", callback=Values())
    _tell(srv, "close")
    deadline = time.monotonic() + 10
    while not conv.closed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert conv.closed and link.closed
    with pytest.raises(ChannelClosed):
        conv.request("ACME")
    conv.close()
    _stop(srv)


def test_hot_links_deliver_the_latest_value_after_the_nats_server_restarts(nats_server, spawn, name):
    srv = _server(spawn, nats_server.url, name)
    conv = dde.connect(name, "Stocks", host=nats_server.url, timeout=5)
    hot = Values()
    link = conv.advise("ACME", callback=hot)
    hot.wait_for("101.5")
    nats_server.restart(down_for=0.5)
    _tell(srv, "set ACME 200")  # set while (or just after) the broker is back: never blocks the server
    _tell(srv, "set ACME 201")
    got = hot.wait_for("201", timeout=30)
    assert got[-1] == "201" and got[0] == "101.5"
    assert got.count("101.5") == 1  # the re-opened watch's replay of a delivered value is skipped
    assert conv.request("ACME") == "201"
    assert conv.execute("again") == "Stocks:AGAIN"  # calls work again too
    link.close()
    conv.close()
    _stop(srv)


def test_a_malformed_request_is_a_protocol_error_and_the_server_goes_on(nats_server, spawn, name):
    import asyncio

    import nats

    srv = _server(spawn, nats_server.url, name)

    async def raw(payload: bytes) -> bytes:
        nc = await nats.connect(nats_server.url)
        try:
            return (await nc.request(_nats.subject("dde", name), payload, timeout=5)).data
        finally:
            await nc.close()

    for junk in (b"not json", b"{}", b'[{"id": 1, "op": "advise", "item": "x"}]', b"[" * 3):
        assert b'"error":"ProtocolError"' in asyncio.run(raw(junk))
    with dde.connect(name, "Stocks", host=nats_server.url, timeout=5) as conv:
        assert conv.request("ACME") == "101.5"
    _stop(srv)


def test_names_become_bucket_names_and_keys_without_wildcards_or_extra_tokens():
    assert bucket_name("Prices") == "interproc_dde_Prices"
    assert bucket_name("a.b") != bucket_name("a_b") and "." not in bucket_name("a.b")
    for bad in ("a*", "a>", "a b", ""):
        with pytest.raises(ValueError):
            bucket_name(bad)
    key = item_key("To pic", "a.b>*")
    assert key.count(".") == 1 and "*" not in key and ">" not in key and " " not in key
    assert item_key("t", "a.b") != item_key("t", "a=2Eb")
    with pytest.raises(ValueError):
        dde.connect("bad*name", "Stocks", host="nats://127.0.0.1:1")
    with pytest.raises(ValueError):
        dde.connect("Prices", "Stocks", host="nats://127.0.0.1:1/extra")


def test_a_server_without_jetstream_is_a_clear_error(name):
    server = NatsServer()
    try:
        server.stop()
        server.extra = []  # the fixture turns -js on; run this one without JetStream
        import subprocess as sp

        server.proc = sp.Popen([server.binary, "-a", "127.0.0.1", "-p", str(server.port)],
                               stdout=sp.DEVNULL, stderr=sp.DEVNULL)
        deadline = time.monotonic() + 10
        import socket

        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", server.port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        with pytest.raises(NotFound, match="JetStream"):
            dde.Server(name, host=server.url)
    finally:
        server.close()


def test_dde_and_window_messages_pass_credentials_through(spawn, name):
    from interproc import messages

    server = NatsServer(extra=["--user", "alice", "--pass", "s3cret"])
    try:
        host = server.url.removeprefix("nats://")
        with pytest.raises(PermissionDenied):
            dde.connect(name, "Stocks", host=f"nats://alice:wrong@{host}", timeout=5)
        url = f"nats://alice:s3cret@{host}"
        srv = _server(spawn, url, name)
        with dde.connect(name, "Stocks", host=url, timeout=5) as conv:
            assert conv.request("ACME") == "101.5"
            assert "s3cret" not in repr(conv)
        _stop(srv)
        with pytest.raises(PermissionDenied):
            messages.send_message(name, 0x401, host=f"nats://alice:wrong@{host}", timeout=5)
    finally:
        _nats.close_all()
        server.close()
    server = NatsServer(extra=["--auth", "tok3n"])
    try:
        srv = _server(spawn, server.url.replace("nats://", "nats://tok3n@"), name)
        with dde.connect(name, "Stocks", host=server.url, token="tok3n", timeout=5) as conv:
            assert conv.request("ACME") == "101.5"
        _stop(srv)
    finally:
        _nats.close_all()
        server.close()


def test_a_killed_servers_stale_items_are_gone_when_a_new_server_starts(nats_server, spawn, name):
    srv = _server(spawn, nats_server.url, name)
    _tell(srv, "set Only-Old yes")
    srv.kill()  # SIGKILL: no close, the bucket stays behind
    srv.wait(10)
    import contextlib
    import os

    with contextlib.suppress(FileNotFoundError):  # what `interproc gc` does with a dead server's socket
        os.unlink(os.path.join(os.environ["INTERPROC_RUNTIME_DIR"], f"dde.{name}.sock"))
    srv = _server(spawn, nats_server.url, name)
    with dde.connect(name, "Stocks", host=nats_server.url, timeout=5) as conv:
        assert conv.request("ACME") == "101.5"
        with pytest.raises(NotFound):
            conv.request("Only-Old")
    _stop(srv)


def test_a_broker_that_lost_its_store_gets_the_items_again(nats_server, spawn, name):
    import shutil

    srv = _server(spawn, nats_server.url, name)
    conv = dde.connect(name, "Stocks", host=nats_server.url, timeout=5)
    hot = Values()
    conv.advise("ACME", callback=hot)
    hot.wait_for("101.5")
    nats_server.stop()
    shutil.rmtree(nats_server.store)  # the broker comes back empty: no bucket at all
    nats_server.start()
    _tell(srv, "set ACME 300")
    assert hot.wait_for("300", timeout=30)[-1] == "300"  # the server re-created and re-filled the bucket
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if conv.request("a.b") == "dotted":  # an item not set since: put again too
                break
        except NotFound:
            time.sleep(0.1)
    assert conv.request("a.b") == "dotted"
    conv.close()
    _stop(srv)


def test_asyncio_cold_hot_and_warm_links_poke_and_execute_over_nats(nats_server, spawn, name):
    import asyncio

    srv = _server(spawn, nats_server.url, name)

    async def main() -> None:
        async with await dde.aconnect(name, "Stocks", host=nats_server.url, timeout=5) as conv:
            assert await conv.request("ACME") == "101.5"  # cold link: a get from the bucket
            assert await conv.request("*") == b"\x00star"
            assert (await conv.request("TopicItemList")).split("\t") == ["*", "ACME", "a.b", "a=2Eb"]
            with pytest.raises(NotFound):
                await conv.request("nothing")
            hot: list = []
            warm: list = []
            changed = asyncio.Event()

            async def on_hot(item, value):  # a coroutine callback, run on this loop
                hot.append(value)
                changed.set()

            link = await conv.advise("ACME", callback=on_hot)
            await conv.advise("ACME", hot=False, callback=lambda item: warm.append(item))
            async def until(pred) -> None:
                deadline = time.monotonic() + 15
                while not pred() and time.monotonic() < deadline:
                    changed.clear()
                    try:
                        await asyncio.wait_for(changed.wait(), 0.5)
                    except asyncio.TimeoutError:
                        pass

            await until(lambda: "101.5" in hot)
            assert hot == ["101.5"]  # the watch replays the current value
            await asyncio.to_thread(_tell, srv, "set ACME 102")
            await conv.poke("ACME", "103")  # accepted: stored and advised
            await until(lambda: hot[-1] == "103")
            assert hot[-1] == "103" and hot.count("103") == 1
            assert warm and set(warm) == {"ACME"}  # warm: that it changed, not the value
            assert link.received == len(hot)
            assert await conv.execute("go") == "Stocks:GO"
            with pytest.raises(RemoteError) as info:
                await conv.poke("boom", "1")
            assert info.value.remote_type == "KeyError"
            with pytest.raises(Exception, match="refused"):
                await conv.poke("locked", "1")
            await link.close()
            assert link.closed
        assert conv.closed
        with pytest.raises(NotFound):  # a topic the server does not have
            await dde.aconnect(name, "Nope", host=nats_server.url, timeout=5)

    asyncio.run(main())
    _stop(srv)

    async def gone() -> None:
        await dde.aconnect(name, "Stocks", host=nats_server.url)

    with pytest.raises(NotFound):  # no server: at once
        asyncio.run(gone())


def test_asyncio_conversation_ends_when_the_server_closes_over_nats(nats_server, spawn, name):
    import asyncio

    srv = _server(spawn, nats_server.url, name)

    async def main() -> None:
        conv = await dde.aconnect(name, "Stocks", host=nats_server.url, timeout=5)
        link = await conv.advise("ACME", callback=lambda item, value: None)
        await asyncio.to_thread(_tell, srv, "close")
        deadline = time.monotonic() + 15
        while not conv.closed and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert conv.closed and link.closed  # the server's close ends the links too
        with pytest.raises(ChannelClosed):
            await conv.execute("go")
        await conv.close()

    asyncio.run(main())
    _stop(srv)


def test_asyncio_hot_link_delivers_the_latest_value_after_the_nats_server_restarts(nats_server, spawn, name):
    import asyncio

    srv = _server(spawn, nats_server.url, name)

    async def main() -> list:
        got: list = []
        async with await dde.aconnect(name, "Stocks", host=nats_server.url, timeout=5) as conv:
            await conv.advise("ACME", callback=lambda item, value: got.append(value))

            async def until(value) -> None:
                deadline = time.monotonic() + 30
                while value not in got and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)

            await until("101.5")
            await asyncio.to_thread(nats_server.restart, down_for=0.5)
            await asyncio.to_thread(_tell, srv, "set ACME 200")
            await asyncio.to_thread(_tell, srv, "set ACME 201")
            await until("201")
            assert await conv.request("ACME") == "201"
            assert await conv.execute("again") == "Stocks:AGAIN"  # calls work again too
        return got

    got = asyncio.run(main())
    assert got[0] == "101.5" and got[-1] == "201"
    assert got.count("101.5") == 1  # the re-opened watch's replay of a delivered value is skipped
    _stop(srv)
