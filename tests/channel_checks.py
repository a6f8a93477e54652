"""A conformance suite for message Channels, independent of any transport.

    from channel_checks import check_channel, CHECKS
    check_channel(make_pair)                  # runs every check
    @pytest.mark.parametrize("check", CHECKS) # or one test per check

``make_pair()`` returns ``(a, b)``: two connected channels whose link is a
real OS object (pipe, socket, shared memory, pty...), possibly with the other
end in another process.  ``a`` sends to ``b``; with ``duplex=True`` ``b``
sends to ``a`` as well.  The suite only uses the Channel contract:
``send``/``recv(timeout=)``/``send_obj``/``recv_obj``/``close``/``closed``/
iteration, and the errors ``Timeout`` and ``ChannelClosed``.

Large messages are always received by a concurrent reader, since no
transport can be assumed to buffer 16 MiB.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable

from interproc import ChannelClosed, HandleClosed, Timeout

Pair = Callable[[], tuple[Any, Any]]
LARGE = 16 * 1024 * 1024


def _payload(size: int, seed: int = 0) -> bytes:
    block = bytes((i * 31 + seed) & 0xFF for i in range(4096))
    return (block * (size // 4096 + 1))[:size]


class _Reader(threading.Thread):
    """Receives ``count`` messages from ``ch`` in the background."""

    def __init__(self, ch: Any, count: int, timeout: float = 30) -> None:
        super().__init__(daemon=True)
        self.ch, self.count, self.timeout = ch, count, timeout
        self.got: list[bytes] = []
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            for _ in range(self.count):
                self.got.append(self.ch.recv(timeout=self.timeout))
        except BaseException as exc:  # reported by result()
            self.error = exc

    def result(self) -> list[bytes]:
        self.join(self.timeout + 5)
        assert not self.is_alive(), "the reader is stuck"
        if self.error is not None:
            raise self.error
        return self.got


def _closing(pair: tuple[Any, Any]):
    class _Ctx:
        def __enter__(self):
            return pair

        def __exit__(self, *exc):
            for ch in pair:
                ch.close()

    return _Ctx()


def _directions(a: Any, b: Any, duplex: bool):
    yield a, b
    if duplex:
        yield b, a


def check_boundaries(make_pair: Pair, duplex: bool = True, large: int = LARGE) -> None:
    """0 B, 1 B, 64 KiB and a large message arrive whole and separate."""
    sizes = [0, 1, 2, 100, 65535, 65536, 65537, 0, large, 1]
    with _closing(make_pair()) as (a, b):
        for tx, rx in _directions(a, b, duplex):
            reader = _Reader(rx, len(sizes))
            for i, size in enumerate(sizes):
                tx.send(_payload(size, i))
            got = reader.result()
            assert [len(m) for m in got] == sizes
            for i, (size, msg) in enumerate(zip(sizes, got)):
                assert msg == _payload(size, i), f"message {i} ({size} B) was corrupted"
                assert isinstance(msg, bytes)


def check_buffer_types(make_pair: Pair, duplex: bool = True) -> None:
    """bytes, bytearray, memoryview slices and numpy arrays are all sendable."""
    base = _payload(1000)
    items: list[tuple[Any, bytes]] = [
        (base, base),
        (bytearray(base), base),
        (memoryview(base)[10:500], base[10:500]),
        (memoryview(bytearray(base)).cast("I")[:10], base[:40]),
    ]
    try:
        import numpy as np
    except ImportError:  # numpy is optional for transports
        np = None
    if np is not None:
        arr = np.arange(1000, dtype=np.float64)
        items.append((arr, arr.tobytes()))
        items.append((arr[::3], arr[::3].tobytes()))  # not contiguous: copied once
        items.append((arr.reshape(10, 100), arr.tobytes()))
    with _closing(make_pair()) as (a, b):
        reader = _Reader(b, len(items))
        for obj, _ in items:
            a.send(obj)
        got = reader.result()
        assert got == [want for _, want in items]


def check_recv_timeout(make_pair: Pair, duplex: bool = True) -> None:
    """recv(timeout=) raises Timeout (a TimeoutError), and the channel still works after it."""
    with _closing(make_pair()) as (a, b):
        for tx, rx in _directions(a, b, duplex):
            try:
                rx.recv(timeout=0.05)
            except Timeout as exc:
                assert isinstance(exc, TimeoutError)
            else:
                raise AssertionError("recv(timeout=0.05) on an idle channel returned")
            tx.send(b"after the timeout")
            assert rx.recv(timeout=10) == b"after the timeout"


def check_close(make_pair: Pair, duplex: bool = True) -> None:
    """What was sent before close arrives; then the peer sees ChannelClosed and iteration ends."""
    with _closing(make_pair()) as (a, b):
        a.send(b"last words")
        a.send(b"")
        a.close()
        assert a.closed
        # this handle's own close is HandleClosed (a ValueError), not ChannelClosed
        try:
            a.send(b"x")
        except HandleClosed as exc:
            assert isinstance(exc, ValueError) and not isinstance(exc, ChannelClosed)
        else:
            raise AssertionError("send on a closed channel did not raise HandleClosed")
        assert b.recv(timeout=10) == b"last words"
        assert list(b) == [b""]
        try:
            b.recv(timeout=10)
        except ChannelClosed as exc:
            assert isinstance(exc, ConnectionError)
        else:
            raise AssertionError("recv after the peer closed did not raise ChannelClosed")
        if duplex:
            # Writing to a peer that has gone fails too (maybe after a buffered write or two).
            try:
                for _ in range(1000):
                    b.send(b"y" * 1024, timeout=5)
            except ChannelClosed:
                pass
            else:
                raise AssertionError("sending to a closed peer never raised ChannelClosed")


def check_objects(make_pair: Pair, duplex: bool = True) -> None:
    """send_obj/recv_obj through the channel's codec (json by default)."""
    objs = [None, 0, -1.5, "héllo ✓", [1, [2, 3]], {"a": {"b": [True, False, None]}}, ""]
    with _closing(make_pair()) as (a, b):
        for tx, rx in _directions(a, b, duplex):
            reader = threading.Thread(target=lambda: [tx.send_obj(o) for o in objs])
            reader.start()
            got = [rx.recv_obj(timeout=10) for _ in objs]
            reader.join(10)
            assert got == objs


def check_many_in_order(make_pair: Pair, duplex: bool = True, count: int = 3000) -> None:
    """Thousands of messages, both directions at once, each read concurrently: no deadlock, order kept."""
    sizes = [(i * 7919) % 700 if i % 97 else 20000 for i in range(count)]
    with _closing(make_pair()) as (a, b):
        readers = [(_Reader(rx, count), i) for i, (tx, rx) in enumerate(_directions(a, b, duplex))]
        senders = []
        for i, (tx, rx) in enumerate(_directions(a, b, duplex)):
            def send_all(tx=tx, seed=i):
                for n, size in enumerate(sizes):
                    tx.send(n.to_bytes(4, "big") + bytes([seed]) * size)
            t = threading.Thread(target=send_all, daemon=True)
            t.start()
            senders.append(t)
        for reader, seed in readers:
            got = reader.result()
            assert len(got) == count
            for n, msg in enumerate(got):
                assert int.from_bytes(msg[:4], "big") == n, f"message {n} arrived out of order"
                assert msg[4:] == bytes([seed]) * sizes[n], f"message {n} was corrupted"
        for t in senders:
            t.join(10)
            assert not t.is_alive()


def check_iteration(make_pair: Pair, duplex: bool = True) -> None:
    """Iterating a channel yields each message until the peer closes."""
    with _closing(make_pair()) as (a, b):
        msgs = [b"one", b"two", b"", b"four" * 1000]
        t = threading.Thread(target=lambda: ([a.send(m) for m in msgs], a.close()))
        t.start()
        assert list(b) == msgs
        t.join(10)


CHECKS = [
    check_boundaries,
    check_buffer_types,
    check_recv_timeout,
    check_close,
    check_objects,
    check_many_in_order,
    check_iteration,
]


def check_channel(make_pair: Pair, *, duplex: bool = True) -> None:
    """Run every check; each gets a fresh pair from ``make_pair``."""
    for check in CHECKS:
        try:
            check(make_pair, duplex=duplex)
        except AssertionError as exc:
            raise AssertionError(f"{check.__name__}: {exc}") from exc


def check_byte_stream(make_pair: Pair) -> None:
    """For byte-mode transports: bytes arrive in order (boundaries may move), EOF on close."""
    data = os.urandom(3 * 1024 * 1024)
    with _closing(make_pair()) as (a, b):
        t = threading.Thread(target=lambda: ([a.write(data[i : i + 50000]) for i in range(0, len(data), 50000)],
                                             a.close()))
        t.start()
        got = b"".join(iter(lambda: b.read(1 << 16, timeout=10), b""))
        t.join(10)
        assert got == data
        try:
            b.recv(timeout=1)
        except ChannelClosed:
            pass
        else:
            raise AssertionError("recv at the end of a byte stream did not raise ChannelClosed")
