"""The asyncio twin of tests/channel_checks.py: one conformance battery for
every AsyncChannel, whatever the transport.

    from aio_channel_checks import AIO_CHECKS
    asyncio.run(check(make_pair, duplex=True))

``make_pair`` is ``async () -> (a, b)``: two connected asyncio channels over a
real OS object; ``a`` sends to ``b`` (and back with ``duplex=True``).  Only
the contract is used: ``await send/recv(timeout=)``, ``send_obj/recv_obj``,
``close``/``aclose``/``closed``, ``async for``; ``Timeout``,
``ChannelClosed`` and ``HandleClosed``.  Large messages are received by a
concurrent task, as no transport buffers megabytes.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

import interproc
from interproc import ChannelClosed, HandleClosed, Timeout

Pair = Callable[[], Awaitable[tuple[Any, Any]]]


def _payload(size: int, seed: int = 0) -> bytes:
    block = bytes((i * 31 + seed) & 0xFF for i in range(4096))
    return (block * (size // 4096 + 1))[:size]


async def _recv_n(ch: Any, n: int, timeout: float = 30) -> list[bytes]:
    return [await ch.recv(timeout=timeout) for _ in range(n)]


def _directions(a: Any, b: Any, duplex: bool):
    yield a, b
    if duplex:
        yield b, a


async def _close(*chans: Any) -> None:
    for ch in chans:
        await ch.aclose()


async def check_contract_types(make_pair: Pair, duplex: bool = True, **_: Any) -> None:
    """Both ends are instances of the contract classes they claim."""
    a, b = await make_pair()
    try:
        assert isinstance(a, interproc.aio.AsyncSendChannel) and isinstance(b, interproc.aio.AsyncReceiveChannel)
        if duplex:
            assert isinstance(a, interproc.aio.AsyncChannel) and isinstance(b, interproc.aio.AsyncChannel)
    finally:
        await _close(a, b)


async def check_boundaries(make_pair: Pair, duplex: bool = True, large: int = 4 << 20, **_: Any) -> None:
    """0 B, 1 B, 64 KiB and a large message arrive whole and separate."""
    sizes = [0, 1, 2, 100, 65535, 65536, 65537, 0, large, 1]
    a, b = await make_pair()
    try:
        for tx, rx in _directions(a, b, duplex):
            reader = asyncio.ensure_future(_recv_n(rx, len(sizes)))
            for i, size in enumerate(sizes):
                await tx.send(_payload(size, i), timeout=30)
            got = await asyncio.wait_for(reader, 60)
            assert [len(m) for m in got] == sizes
            for i, (size, msg) in enumerate(zip(sizes, got)):
                assert msg == _payload(size, i), f"message {i} ({size} B) was corrupted"
    finally:
        await _close(a, b)


async def check_buffer_types(make_pair: Pair, duplex: bool = True, **_: Any) -> None:
    """bytes, bytearray and memoryview slices are all sendable."""
    base = _payload(1000)
    items = [(base, base), (bytearray(base), base), (memoryview(base)[10:500], base[10:500]),
             (memoryview(bytearray(base)).cast("I")[:10], base[:40])]
    a, b = await make_pair()
    try:
        reader = asyncio.ensure_future(_recv_n(b, len(items)))
        for obj, _want in items:
            await a.send(obj)
        assert await asyncio.wait_for(reader, 30) == [want for _, want in items]
    finally:
        await _close(a, b)


async def check_recv_timeout(make_pair: Pair, duplex: bool = True, **_: Any) -> None:
    """recv(timeout=) raises Timeout and the channel still works; so does a cancelled recv."""
    a, b = await make_pair()
    try:
        for tx, rx in _directions(a, b, duplex):
            try:
                await rx.recv(timeout=0.05)
            except Timeout as exc:
                assert isinstance(exc, TimeoutError)
            else:
                raise AssertionError("recv(timeout=0.05) on an idle channel returned")
            waiting = asyncio.ensure_future(rx.recv())
            await asyncio.sleep(0.05)
            waiting.cancel()
            try:
                await waiting
            except asyncio.CancelledError:
                pass
            await tx.send(b"after the timeout")
            assert await rx.recv(timeout=10) == b"after the timeout"
    finally:
        await _close(a, b)


async def check_close(make_pair: Pair, duplex: bool = True, peer_sees_close: bool = True, **_: Any) -> None:
    """What was sent before close arrives; use after close is HandleClosed; the peer sees ChannelClosed."""
    a, b = await make_pair()
    try:
        await a.send(b"last words")
        await a.send(b"")
        await a.aclose()
        assert a.closed
        try:
            await a.send(b"x")
        except HandleClosed as exc:
            assert isinstance(exc, ValueError) and not isinstance(exc, ChannelClosed)
        else:
            raise AssertionError("send after close() did not raise HandleClosed")
        assert await b.recv(timeout=10) == b"last words"
        assert await b.recv(timeout=10) == b""
        if peer_sees_close:
            try:
                await b.recv(timeout=10)
            except ChannelClosed as exc:
                assert isinstance(exc, ConnectionError)
            else:
                raise AssertionError("recv after the peer closed did not raise ChannelClosed")
    finally:
        await _close(a, b)


async def check_objects(make_pair: Pair, duplex: bool = True, **_: Any) -> None:
    """send_obj/recv_obj through the channel's codec (json by default)."""
    objs = [None, 0, -1.5, "héllo ✓", [1, [2, 3]], {"a": {"b": [True, False, None]}}, ""]
    a, b = await make_pair()
    try:
        for tx, rx in _directions(a, b, duplex):
            for o in objs:
                await tx.send_obj(o)
            assert [await rx.recv_obj(timeout=10) for _ in objs] == objs
    finally:
        await _close(a, b)


async def check_many_in_order(make_pair: Pair, duplex: bool = True, count: int = 1500, **_: Any) -> None:
    """Many messages, both directions at once, read concurrently: no deadlock, order kept."""
    sizes = [(i * 7919) % 700 if i % 97 else 20000 for i in range(count)]
    a, b = await make_pair()
    try:
        async def send_all(tx: Any, seed: int) -> None:
            for n, size in enumerate(sizes):
                await tx.send(n.to_bytes(4, "big") + bytes([seed]) * size, timeout=30)

        pairs = list(_directions(a, b, duplex))
        readers = [asyncio.ensure_future(_recv_n(rx, count)) for _, rx in pairs]
        senders = [asyncio.ensure_future(send_all(tx, i)) for i, (tx, _) in enumerate(pairs)]
        await asyncio.wait_for(asyncio.gather(*senders), 60)
        for seed, reader in enumerate(readers):
            got = await asyncio.wait_for(reader, 60)
            for n, msg in enumerate(got):
                assert int.from_bytes(msg[:4], "big") == n, f"message {n} arrived out of order"
                assert msg[4:] == bytes([seed]) * sizes[n], f"message {n} was corrupted"
    finally:
        await _close(a, b)


async def check_iteration(make_pair: Pair, duplex: bool = True, **_: Any) -> None:
    """``async for`` yields each message until the peer closes."""
    a, b = await make_pair()
    try:
        msgs = [b"one", b"two", b"", b"four" * 1000]
        for m in msgs:
            await a.send(m)
        await a.aclose()
        got = [m async for m in b]
        assert got == msgs
    finally:
        await _close(a, b)


AIO_CHECKS = [
    check_contract_types,
    check_boundaries,
    check_buffer_types,
    check_recv_timeout,
    check_close,
    check_objects,
    check_many_in_order,
    check_iteration,
]
