"""DDE between real processes: a price server, client processes, links, poke/execute, a killed server."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

import interproc
from interproc import dde

# A client process: argv = service, mode ("plain", "slow", "ack" or "poker").  It
# reports a cold request, then follows ACME on a hot and a warm link until the
# hot link has seen "FINAL", and prints a JSON summary.
CLIENT = """
import json, sys, threading, time
from interproc import dde
service, mode = sys.argv[1], sys.argv[2]
conv = dde.connect(service, "Stocks", timeout=10)
out = {"cold": conv.request("ACME")}
hot_values, warm = [], []
done = threading.Event()
def on_hot(item, value):
    if mode == "slow":
        time.sleep(0.002)
    hot_values.append(value)
    if value == "FINAL":
        done.set()
hot = conv.advise("ACME", hot=True, callback=on_hot, ack=(mode == "ack"))
wlink = conv.advise("ACME", hot=False, callback=lambda item: warm.append(item))
if mode == "poker":
    try:
        conv.poke("ORDER", "42")
        out["poke"] = "ok"
    except Exception as exc:
        out["poke"] = type(exc).__name__
    try:
        out["execute"] = conv.execute("[Reset]")
    except Exception as exc:
        out["execute"] = type(exc).__name__
print("linked", flush=True)
assert done.wait(30), "the final value never arrived"
for _ in range(300):  # the warm link travels separately (the socket; hot links may use shared memory)
    if warm:
        break
    time.sleep(0.02)
out.update(hot=hot_values, hot_dropped=hot.dropped, warm=len(warm), warm_item=warm[-1] if warm else None)
hot.close(); wlink.close(); conv.close()
print(json.dumps(out), flush=True)
"""


def run_clients(spawn, service: str, modes: list[str]) -> list:
    procs = [spawn(CLIENT, service, mode) for mode in modes]
    for p in procs:
        line = p.stdout.readline().strip()
        assert line == "linked", p.stderr.read()
    return procs


def results(procs) -> list[dict]:
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=40)
        assert p.returncode == 0, err
        outs.append(json.loads(out.strip().splitlines()[-1]))
    return outs


def test_price_server_with_three_clients_cold_warm_hot_poke_execute(spawn, name):
    with dde.Server(name) as srv:
        srv.set("Stocks", "ACME", "100")
        pokes, commands = [], []
        srv.on_poke = lambda topic, item, value: pokes.append((topic, item, value))
        srv.on_execute = lambda topic, command: commands.append(command) or f"done {command}"
        srv.start()
        assert (name, ["System", "Stocks"]) in dde.services()
        procs = run_clients(spawn, name, ["poker", "slow", "ack"])
        assert pokes == [("Stocks", "ORDER", "42")] and commands == ["[Reset]"]
        for i in range(300):
            srv.set("Stocks", "ACME", str(i))
        srv.set("Stocks", "ACME", "FINAL")
        poker, slow, acked = results(procs)
    for out in (poker, slow, acked):
        assert out["cold"] == "100"
        assert out["hot"][-1] == "FINAL"  # the final value always arrives
        numbers = [int(v) for v in out["hot"][:-1]]
        assert numbers == sorted(numbers)  # in order, perhaps with superseded values skipped
        assert out["warm"] >= 1 and out["warm_item"] == "ACME"
    assert poker["poke"] == "ok" and poker["execute"] == "done [Reset]"
    assert acked["hot"] == [str(i) for i in range(300)] + ["FINAL"] and acked["hot_dropped"] == 0
    assert len(slow["hot"]) + slow["hot_dropped"] == 301  # each value delivered or counted as dropped


def test_poke_and_execute_are_refused_without_handlers(spawn, name):
    with dde.Server(name) as srv:
        srv.set("Stocks", "ACME", "7")
        srv.start()
        procs = run_clients(spawn, name, ["poker"])
        srv.set("Stocks", "ACME", "FINAL")
        (out,) = results(procs)
        assert out["poke"] == "PermissionDenied" and out["execute"] == "PermissionDenied"
        assert srv.get("Stocks", "ACME") == "FINAL"


SERVER = """
import itertools, sys, time
from interproc import dde
srv = dde.Server(sys.argv[1], **({"host": "tcp://127.0.0.1:0", "authkey": b"netdde"} if len(sys.argv) > 2 else {}))
srv.set("Stocks", "ACME", "0")
srv.start()
print(srv.address, flush=True)
for i in itertools.count(1):
    srv.set("Stocks", "ACME", str(i))
    time.sleep(0.001)
"""


def test_server_killed_mid_advise_ends_links_and_clients_reconnect(spawn, name):
    server = spawn(SERVER, name)
    server.stdout.readline()
    conv = dde.connect(name, "Stocks", timeout=10)
    seen = []
    link = conv.advise("ACME", hot=True, callback=lambda item, value: seen.append(int(value)))
    deadline = time.monotonic() + 20
    while len(seen) < 20:
        assert time.monotonic() < deadline, "no updates arrived"
        time.sleep(0.01)
    os.kill(server.pid, signal.SIGKILL)
    server.wait(timeout=10)
    with pytest.raises(interproc.ChannelClosed):
        conv.request("ACME", timeout=10)
    assert conv.closed and link.closed
    assert seen == sorted(seen)
    with pytest.raises(interproc.NotFound):
        dde.connect(name, "Stocks")  # not running: NotFound at once
    again = spawn(SERVER, name)
    conv2 = dde.connect(name, "Stocks", timeout=10)
    assert int(conv2.request("ACME")) >= 0
    conv2.close()
    conv.close()
    again.send_signal(signal.SIGTERM)
    again.wait(timeout=10)
    os.unlink(os.path.join(os.environ["INTERPROC_RUNTIME_DIR"], f"dde.{name}.sock"))


def test_netdde_over_tcp_with_authkey(spawn, name):
    server = spawn(SERVER, name, "tcp")
    address = server.stdout.readline().strip()
    assert address.startswith("tcp://127.0.0.1:")
    with dde.connect(name, "Stocks", host=address, authkey=b"netdde", timeout=10) as conv:
        assert int(conv.request("ACME")) >= 0
        assert conv.request("TopicItemList") == "ACME"
    with pytest.raises(interproc.PermissionDenied):
        dde.connect(name, "Stocks", host=address, authkey=b"wrong", timeout=10)
    with pytest.raises(interproc.PermissionDenied):
        dde.connect(name, "Stocks", host=address, timeout=10)  # no key: the server demands one
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=10)
    path = os.path.join(os.environ["INTERPROC_RUNTIME_DIR"], f"dde.{name}.sock")
    if os.path.exists(path):
        os.unlink(path)


def test_unknown_topic_item_and_system_topic(name):
    with dde.Server(name) as srv:
        srv.set("Stocks", "ACME", b"\x00\x01", format="MyApp.Tick")
        srv.start()
        with pytest.raises(interproc.NotFound):
            dde.connect(name, "Bonds", timeout=5)
        with dde.connect(name, "Stocks", timeout=5) as conv:
            assert conv.request("ACME") == b"\x00\x01"
            with pytest.raises(interproc.NotFound):
                conv.request("NOPE")
        with dde.connect(name, "System", timeout=5) as sysconv:
            assert sysconv.request("Topics").split("\t") == ["System", "Stocks"]
            assert set(sysconv.request("SysItems").split("\t")) >= {"Topics", "SysItems", "Formats", "Status"}
            assert "MyApp.Tick" in sysconv.request("Formats").split("\t")
            assert sysconv.request("Status") == "Ready"
        with pytest.raises(ValueError):
            srv.set("System", "X", "1")


def test_a_plain_socket_client_written_from_the_docs_holds_a_conversation(spawn, name):
    """Only what docs/dde.md says: the socket path, 8-byte frames, the handshake, JSON objects."""
    client = """
import json, os, socket, struct, sys
service = sys.argv[1]
path = os.path.join(os.environ["INTERPROC_RUNTIME_DIR"], f"dde.{service}.sock")
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(path)
def recv_exact(n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise SystemExit("server closed")
        buf += chunk
    return buf
def send(obj):
    body = json.dumps(obj).encode()
    s.sendall(struct.pack(">Q", len(body)) + body)
def recv():
    (n,) = struct.unpack(">Q", recv_exact(8))
    return json.loads(recv_exact(n))
greeting = recv()
assert greeting["status"] == "ok", greeting
send({"proto": "interproc/1", "kind": "socket"})
send({"id": 1, "op": "initiate", "service": service, "topic": "Stocks"})
out = {"initiate": recv()}
send({"id": 2, "op": "request", "item": "ACME"})
out["request"] = recv()
send({"id": 3, "op": "advise", "item": "ACME", "hot": True, "ack": True})
out["advise"] = recv()
send({"id": 4, "op": "poke", "item": "Order", "format": "TEXT", "value": "buy 10"})
msgs = [recv()]
while "id" not in msgs[-1]:
    msgs.append(recv())
out["poke"] = msgs[-1]
send({"id": 5, "op": "request", "item": "NOPE"})
out["missing"] = recv()
print("ready", flush=True)
updates = []
while len(updates) < 3:
    m = recv()
    if m.get("op") == "data":
        updates.append(m["value"])
        send({"op": "ack", "link": m["link"]})
out["updates"] = updates
send({"id": 6, "op": "execute", "command": "[Reset]"})
while "id" not in (m := recv()):
    pass
out["execute"] = m
print(json.dumps(out), flush=True)
s.close()
"""
    with dde.Server(name) as srv:
        srv.set("Stocks", "ACME", "101.5")
        srv.on_poke = lambda topic, item, value: None
        srv.start()
        proc = spawn(client, name)
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        assert srv.get("Stocks", "Order") == "buy 10"
        for price in ("102", "103", "104"):
            srv.set("Stocks", "ACME", price)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
    got = json.loads(out)
    assert got["initiate"]["ok"] is True
    assert got["request"] == {"id": 2, "ok": True, "format": "TEXT", "value": "101.5"}
    assert got["advise"]["ok"] is True and isinstance(got["advise"]["link"], int)
    assert got["poke"]["ok"] is True
    assert got["missing"]["ok"] is False and got["missing"]["error"] == "NotFound"
    assert got["updates"] == ["102", "103", "104"]  # acknowledged link: every value
    assert got["execute"]["ok"] is False and got["execute"]["error"] == "PermissionDenied"


def test_asyncio_client_cold_hot_ack_and_server_death(spawn, name):
    import asyncio

    server = spawn(SERVER, name)
    server.stdout.readline()

    async def main():
        conv = await dde.aconnect(name, "Stocks", timeout=10)
        assert int(await conv.request("ACME")) >= 0
        seen: list[int] = []
        got = asyncio.Event()

        async def on_hot(item, value):
            seen.append(int(value))
            if len(seen) >= 30:
                got.set()

        link = await conv.advise("ACME", hot=True, callback=on_hot, ack=True)
        await asyncio.wait_for(got.wait(), 20)
        assert seen == list(range(seen[0], seen[0] + len(seen)))  # acknowledged: every value, in order
        with pytest.raises(interproc.PermissionDenied):
            await conv.execute("[Reset]")
        os.kill(server.pid, signal.SIGKILL)
        with pytest.raises(interproc.ChannelClosed):
            for _ in range(100):
                await conv.request("ACME", timeout=10)
                await asyncio.sleep(0.05)
        assert link.closed
        await conv.close()

    asyncio.run(main())
    server.wait(timeout=10)
    os.unlink(os.path.join(os.environ["INTERPROC_RUNTIME_DIR"], f"dde.{name}.sock"))


def test_asyncio_server_with_client_processes(spawn, name):
    """The asyncio server: a blocking client process (hot link through shared memory) and an async client."""
    import asyncio
    import sys

    async def main():
        async with dde.AsyncServer(name) as srv:
            srv.set("Stocks", "ACME", "100")

            async def on_execute(topic, command):
                await asyncio.sleep(0)
                return command.lower()

            srv.on_execute = on_execute
            env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(os.path.dirname(
                os.path.abspath(__file__))), "src"))
            procs = [await asyncio.create_subprocess_exec(sys.executable, "-c", CLIENT, name, mode,
                                                          stdout=asyncio.subprocess.PIPE, env=env)
                     for mode in ("ack", "plain")]
            try:
                for proc in procs:
                    assert (await asyncio.wait_for(proc.stdout.readline(), 30)).strip() == b"linked"
                conv = await dde.aconnect(name, "Stocks", timeout=5)
                assert await conv.execute("[RESET]") == "[reset]"
                for i in range(50):
                    srv.set("Stocks", "ACME", str(i))
                    await asyncio.sleep(0)
                srv.set("Stocks", "ACME", "FINAL")
                outs = [json.loads((await asyncio.wait_for(p.stdout.read(), 30)).strip().splitlines()[-1])
                        for p in procs]
                await conv.close()
            finally:
                for proc in procs:
                    if proc.returncode is None:
                        proc.kill()
                    await proc.wait()
        return outs

    acked, plain = asyncio.run(main())
    assert acked["cold"] == plain["cold"] == "100"
    assert acked["hot"] == [str(i) for i in range(50)] + ["FINAL"]  # acknowledged: every value
    assert plain["hot"][-1] == "FINAL" and len(plain["hot"]) + plain["hot_dropped"] == 51  # shared-memory link
