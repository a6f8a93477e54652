"""interproc.aio mailslots on nats:// (real nats-server, real writer processes)."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

pytest.importorskip("nats")

from conftest import wait_for_line  # noqa: E402
from nats_server import nats_server  # noqa: E402,F401  (the fixture)

from interproc import _nats  # noqa: E402
from interproc._errors import HandleClosed, Timeout  # noqa: E402
from interproc.aio import Mailslot  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_connections():
    yield
    _nats.close_all()


WRITER = """
import sys
from interproc.mailslot import Mailslot
url, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
input()  # go
for i in range(n):
    Mailslot.write(name, f"w{i}".encode(), scope=url)
print("DONE", flush=True)
"""


def test_an_asyncio_reader_gets_another_process_writes_in_order(nats_server, spawn, name):
    writer = spawn(WRITER, nats_server.url, name, "50", stdin=subprocess.PIPE)

    async def main() -> list[bytes]:
        slot = Mailslot.create(name, scope=nats_server.url)
        try:
            with pytest.raises(Timeout):
                await slot.read(timeout=0.2)
            writer.stdin.write("go\n")
            writer.stdin.flush()
            # the loop stays free while the reader waits: a ticker runs beside it
            ticks = 0

            async def tick() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.01)

            ticker = asyncio.create_task(tick())
            got = [await slot.read(timeout=10) for _ in range(50)]
            ticker.cancel()
            assert ticks > 0
            return got
        finally:
            slot.close()

    got = asyncio.run(main())
    assert got == [f"w{i}".encode() for i in range(50)]
    wait_for_line(writer, "DONE")


def test_asyncio_write_reaches_a_blocking_reader_process_and_closed_reads_fail(nats_server, spawn, name):
    reader = spawn("""
import sys
from interproc.mailslot import Mailslot
slot = Mailslot.create(sys.argv[2], scope=sys.argv[1])
print("READY", flush=True)
print("GOT", slot.read(timeout=10).decode(), slot.read(timeout=10).decode(), flush=True)
""", nats_server.url, name)
    wait_for_line(reader, "READY")

    async def main() -> None:
        await Mailslot.write(name, b"one", scope=nats_server.url, timeout=5)
        await Mailslot.write(name, memoryview(b"two"), scope=nats_server.url, timeout=5)
        slot = Mailslot.create(name, scope=nats_server.url)
        slot.close()
        with pytest.raises(HandleClosed):
            await slot.read(timeout=1)

    asyncio.run(main())
    assert wait_for_line(reader, "GOT").split() == ["GOT", "one", "two"]


def test_open_gives_write_only_channels_on_nats_blocking_and_asyncio(nats_server, name):
    from interproc.mailslot import Mailslot as SyncMailslot

    slot = SyncMailslot.create(name, scope=nats_server.url)
    try:
        with SyncMailslot.open(name, scope=nats_server.url) as w:
            w.send(b"sync")
            w.send_obj({"n": 1})
            assert w.max_message_size >= 1024 * 1024 and not hasattr(w, "recv")
        with pytest.raises(HandleClosed):
            w.send(b"late")

        async def main() -> None:
            aw = await Mailslot.open(name, scope=nats_server.url)
            await aw.send(b"async")
            aw.close()
            with pytest.raises(HandleClosed):
                await aw.send(b"late")

        asyncio.run(main())
        assert [slot.read(timeout=5) for _ in range(3)] == [b"sync", b'{"n":1}', b"async"]
    finally:
        slot.close()
