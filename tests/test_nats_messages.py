"""send_message / post_message / copy_data through a NATS server (real nats-server, the
window in another process)."""

from __future__ import annotations

import asyncio
import subprocess
import time

import pytest

pytest.importorskip("nats")

from conftest import wait_for_line  # noqa: E402
from nats_server import nats_server  # noqa: E402,F401  (the fixture)

from interproc import _nats, messages  # noqa: E402
from interproc._errors import NotFound, ProtocolError, RemoteError, Timeout  # noqa: E402
from interproc._messages._protocol import F_SHM, HEADER, SEND, WM_USER  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_connections():
    yield
    _nats.close_all()


WINDOW = """
import sys
from interproc import messages
url, name = sys.argv[1], sys.argv[2]
win = messages.Window(name, host=url)
posted = []

@win.handler(0x401)
def add(m):
    return m.wparam + m.lparam

@win.handler(0x402)
def note(m):
    posted.append(m.wparam)

@win.handler(0x403)
def fail(m):
    raise KeyError("nope")

@win.handler(0x405)
def count(m):
    return len(posted)

@win.handler(0x404)
def stop(m):
    win.quit()
    return posted

@win.handler(messages.WM_COPYDATA)
def copied(m):
    return [m.tag, bytes(m.data).decode()]

print("READY", flush=True)
if sys.argv[3:] == ["hang"]:
    sys.stdin.readline()  # never pumps until told
win.run()
print("POSTED", len(posted), flush=True)
win.close()
"""


def test_send_post_and_copy_data_reach_a_window_in_another_process(nats_server, spawn, name):
    win = spawn(WINDOW, nats_server.url, name)
    wait_for_line(win, "READY")
    url = nats_server.url
    assert messages.send_message(name, 0x401, 40, 2, host=url, timeout=10) == 42
    for i in range(20):
        messages.post_message(name, 0x402, i, host=url)
    assert messages.copy_data(name, b"payload", 7, host=url, timeout=10) == [7, "payload"]
    with pytest.raises(RemoteError) as info:
        messages.send_message(name, 0x403, host=url, timeout=10)
    assert info.value.remote_type == "KeyError"
    # posts are not waited for (and a window dispatches sent messages first): poll, bounded
    deadline = time.monotonic() + 15
    while messages.send_message(name, 0x405, host=url, timeout=10) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert messages.send_message(name, 0x404, host=url, timeout=10) == list(range(20))  # all, in order
    assert wait_for_line(win, "POSTED").split() == ["POSTED", "20"]
    win.wait(10)
    with pytest.raises(NotFound):  # the window is gone: no responders
        messages.send_message(name, 0x401, host=url, timeout=5)


def test_no_window_is_not_found_at_once_and_a_window_that_does_not_pump_times_out(nats_server, spawn, name):
    url = nats_server.url
    with pytest.raises(NotFound):
        messages.send_message(name, 0x401, host=url, timeout=5)
    messages.post_message(name, 0x402, host=url)  # a post has nobody to tell: no error
    win = spawn(WINDOW, url, name, "hang", stdin=subprocess.PIPE)
    wait_for_line(win, "READY")
    with pytest.raises(Timeout):
        messages.send_message(name, 0x401, 1, 2, host=url, timeout=0.5)
    win.stdin.write("go\n")
    win.stdin.flush()
    assert messages.send_message(name, 0x401, 1, 2, host=url, timeout=10) == 3
    messages.send_message(name, 0x404, host=url, timeout=10)
    win.wait(10)


@pytest.mark.parametrize("script", ["WINDOW", "ASYNC_WINDOW"])
def test_a_remote_frame_naming_shared_memory_or_garbage_is_refused(nats_server, spawn, name, script):
    import nats

    win = spawn(globals()[script], nats_server.url, name)
    wait_for_line(win, "READY")

    async def raw(payload: bytes) -> bytes:
        nc = await nats.connect(nats_server.url)
        try:
            return (await nc.request(_nats.subject("window", name), payload, timeout=5)).data
        finally:
            await nc.close()

    shm = HEADER.pack(SEND, F_SHM, 1, WM_USER, 0, 0) + (4096).to_bytes(8, "big") + b"someones-segment"
    for junk in (shm, b"short"):
        reply = asyncio.run(raw(junk))
        with pytest.raises(ProtocolError):
            from interproc._messages._protocol import SenderCore

            SenderCore.reply_id(reply)
    assert messages.send_message(name, 0x401, 2, 3, host=nats_server.url, timeout=10) == 5  # still serving
    messages.send_message(name, 0x404, host=nats_server.url, timeout=10)
    win.wait(10)


def test_window_names_cannot_inject_subject_tokens(nats_server):
    for bad in ("a*", "a>", "a b"):
        with pytest.raises(ValueError):
            messages.send_message(bad, 0x401, host=nats_server.url, timeout=1)
    assert _nats.subject("window", "a.b") == "interproc.window.a%2Eb"


def test_asyncio_send_post_and_copy_data_reach_a_window_over_nats(nats_server, spawn, name):
    win = spawn(WINDOW, nats_server.url, name)
    wait_for_line(win, "READY")
    url = nats_server.url

    async def main() -> list:
        assert await messages.asend_message(name, 0x401, 40, 2, host=url, timeout=10) == 42
        for i in range(10):
            assert await messages.apost_message(name, 0x402, i, host=url) is None
        assert await messages.acopy_data(name, b"payload", 7, host=url, timeout=10) == [7, "payload"]
        with pytest.raises(RemoteError) as info:
            await messages.asend_message(name, 0x403, host=url, timeout=10)
        assert info.value.remote_type == "KeyError"
        deadline = time.monotonic() + 15
        while await messages.asend_message(name, 0x405, host=url, timeout=10) < 10 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return await messages.asend_message(name, 0x404, host=url, timeout=10)

    assert asyncio.run(main()) == list(range(10))  # every post, in order
    win.wait(10)

    async def gone() -> None:
        await messages.asend_message(name, 0x401, host=url, timeout=5)

    with pytest.raises(NotFound):  # no window: the broker has no responders
        asyncio.run(gone())


def test_asyncio_send_to_a_window_that_does_not_pump_times_out_over_nats(nats_server, spawn, name):
    url = nats_server.url
    win = spawn(WINDOW, url, name, "hang", stdin=subprocess.PIPE)
    wait_for_line(win, "READY")
    with pytest.raises(Timeout):
        asyncio.run(messages.asend_message(name, 0x401, 1, 2, host=url, timeout=0.5))
    win.stdin.write("go\n")
    win.stdin.flush()
    assert asyncio.run(messages.asend_message(name, 0x401, 1, 2, host=url, timeout=10)) == 3
    messages.send_message(name, 0x404, host=url, timeout=10)
    win.wait(10)


ASYNC_WINDOW = """
import asyncio, sys
from interproc import messages
url, name = sys.argv[1], sys.argv[2]

async def main():
    posted = []
    async with messages.AsyncWindow(name, host=url) as win:
        @win.handler(0x401)
        async def add(m):  # a coroutine handler
            await asyncio.sleep(0)
            return m.wparam + m.lparam

        @win.handler(0x402)
        def note(m):
            posted.append(m.wparam)

        @win.handler(0x405)
        def count(m):
            return len(posted)

        @win.handler(0x404)
        def stop(m):
            win.quit()
            return posted

        @win.handler(messages.WM_COPYDATA)
        def copied(m):
            return [m.tag, bytes(m.data).decode()]

        print("READY", flush=True)
        await win.run()
    print("POSTED", len(posted), flush=True)

asyncio.run(main())
"""


def test_an_async_window_on_nats_answers_blocking_and_asyncio_senders(nats_server, spawn, name):
    win = spawn(ASYNC_WINDOW, nats_server.url, name)
    wait_for_line(win, "READY")
    url = nats_server.url
    assert messages.send_message(name, 0x401, 40, 2, host=url, timeout=10) == 42
    assert messages.copy_data(name, b"blocking", 1, host=url, timeout=10) == [1, "blocking"]

    async def main() -> list:
        assert await messages.asend_message(name, 0x401, 1, 2, host=url, timeout=10) == 3
        for i in range(10):
            await messages.apost_message(name, 0x402, i, host=url)
        assert await messages.acopy_data(name, b"async", 2, host=url, timeout=10) == [2, "async"]
        deadline = time.monotonic() + 15
        while await messages.asend_message(name, 0x405, host=url, timeout=10) < 10 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return await messages.asend_message(name, 0x404, host=url, timeout=10)

    assert asyncio.run(main()) == list(range(10))
    assert wait_for_line(win, "POSTED").split() == ["POSTED", "10"]
    win.wait(10)
    with pytest.raises(NotFound):  # the window closed: its subscription went with it
        messages.send_message(name, 0x401, host=url, timeout=5)
