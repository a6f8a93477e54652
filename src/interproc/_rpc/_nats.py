"""RPC over NATS request/reply: ``rpc.Server(obj, "nats://HOST:PORT/calc")``, ``rpc.connect(same)``.

Calls travel on the subject ``interproc.rpc.<service>``; every server of a
service subscribes in one queue group, so N server processes share the calls
(each call goes to exactly one of them).  The payloads are the JSON-RPC
messages of :mod:`._protocol`, unchanged.

Client: :class:`NatsChannel` is an ordinary Channel under the usual
:class:`~._endpoint.Endpoint`.  Each message it sends carries its own reply
subject (``<inbox>.<n>``) so that what comes back for it can be told apart:
the broker's "no responders" status becomes a ``NotFound`` answer to those
calls, and a connection lost while calls are in flight fails those calls at
once with ``ChannelClosed`` (they may or may not have run; nothing is
retried, so nothing runs twice).  Later calls go through as soon as nats-py
has reconnected.

Server: :class:`NatsService`.  Each request is one self-contained message
(the codec is read from its first byte, as the protocol always does), so the
servers of a group keep no per-client state: a fresh :class:`Protocol` per
request, the calls run on a pool of ``workers`` threads, the answer is
published to the request's reply subject.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import traceback
from collections import deque
from typing import Any

from .. import _nats
from .._channel import Channel
from .._errors import ChannelClosed
from ._dispatch import Exposed
from ._protocol import CODECS, SERVER_ERROR, Call, Fault, Protocol, Send, decode, error_object

KIND = "rpc"
QUEUE_GROUP = "interproc-rpc"
_MAX_OUTSTANDING = 10_000  # reply subjects remembered per proxy


def _service(address: str) -> tuple[str, str]:
    server, path = _nats.split(address)
    if not path:
        raise ValueError(f"RPC address {address!r} names no service: use nats://HOST:PORT/SERVICE")
    return server, _nats.subject(KIND, path)


def _codec_of(data: bytes) -> str:
    return "json" if not data or data[:1] in (b"{", b"[", b" ", b"\t", b"\r", b"\n") or "msgpack" not in CODECS \
        else "msgpack"


def _ids(data: bytes) -> list[Any]:
    """The request ids in one of our own outgoing messages (none for notifications)."""
    msg = decode(data)
    items = msg if isinstance(msg, list) else [msg]
    return [m["id"] for m in items if isinstance(m, dict) and "id" in m and "method" in m]


class _Inbox:
    """The client's reply subscription and what arrived on it (no reference to the channel)."""

    def __init__(self, conn: _nats.Connection) -> None:
        self.conn = conn
        self.cond = threading.Condition()
        self.queue: deque[bytes] = deque()
        self.outstanding: dict[str, tuple[str, list[Any]]] = {}  # reply subject -> (codec, ids)
        self.sub: Any = None
        self.closed = False
        self.what = ""
        self.async_waiters: list[tuple[Any, Any]] = []  # (loop, future) of AsyncNatsChannel.recv

    def wake(self) -> None:
        """(Under the lock) something arrived or the inbox closed: wake the asyncio readers too."""
        self.cond.notify_all()
        waiters, self.async_waiters = self.async_waiters, []
        for loop, fut in waiters:
            loop.call_soon_threadsafe(lambda f=fut: f.done() or f.set_result(None))

    def failure(self, token: str, error: dict) -> None:
        """Answer our own outstanding calls of ``token`` with ``error`` (under the lock)."""
        codec, ids = self.outstanding.pop(token, ("json", []))
        if ids:
            self.queue.append(CODECS[codec][0]([{"jsonrpc": "2.0", "error": error, "id": i} for i in ids]))
            self.wake()

    async def on_msg(self, msg: Any) -> None:
        headers = msg.headers or {}
        with self.cond:
            if headers.get("Status") == "503":  # no responders: no server has the service
                self.failure(msg.subject, error_object(SERVER_ERROR, f"{self.what}: no server serves it",
                                                       type_name="NotFound"))
                return
            self.outstanding.pop(msg.subject, None)
            self.queue.append(msg.data)
            self.wake()

    def on_disconnect(self) -> None:
        with self.cond:
            for token in list(self.outstanding):
                self.failure(token, error_object(
                    SERVER_ERROR, f"{self.what}: the connection to the NATS server was lost while the call "
                    "was in flight (it may or may not have run; it is not retried)", type_name="ChannelClosed"))


class NatsChannel(Channel):
    """The client side of RPC over NATS, as a Channel for the Endpoint."""

    trusted = False  # peers are whoever the broker lets publish: never pickle

    def __init__(self, address: str, *, timeout: float | None = None, **creds: Any) -> None:
        server, self.subject = _service(address)
        conn = _nats.connection(server, timeout=timeout, **creds)
        self._inbox = _Inbox(conn)
        self._inbox.what = f"RPC service {address.split('@')[-1]!r}"
        self._base = conn.nc.new_inbox()
        self._next = 0
        self._lock = threading.Lock()
        inbox = self._inbox

        async def subscribe() -> Any:
            sub = await conn.nc.subscribe(f"{self._base}.*", cb=inbox.on_msg)
            await conn.nc.flush(timeout=max(1, timeout or 5))
            return sub

        inbox.sub = _nats.loop_thread().run(subscribe(), None if timeout is None else timeout + 1,
                                            f"{inbox.what}: subscribe")
        conn.add_disconnect_listener(inbox.on_disconnect)
        super().__init__(codec="json")

    def _resources(self) -> Any:
        return self._inbox

    @staticmethod
    def _finalize(inbox: _Inbox) -> None:
        inbox.conn.remove_disconnect_listener(inbox.on_disconnect)
        with inbox.cond:
            inbox.closed = True
            inbox.wake()
        try:
            _nats.loop_thread().submit(inbox.sub.unsubscribe())
        except Exception:  # the loop or connection is gone: so is the subscription
            pass

    def _send_bytes(self, data: Any, timeout: float | None) -> None:
        data = bytes(data)
        with self._lock:
            self._next += 1
            reply = f"{self._base}.{self._next}"
        ids = _ids(data)
        inbox = self._inbox
        if ids:
            with inbox.cond:
                inbox.outstanding[reply] = (_codec_of(data), ids)
                if len(inbox.outstanding) > _MAX_OUTSTANDING:
                    # Calls that timed out and were never answered: forget the oldest.
                    del inbox.outstanding[next(iter(inbox.outstanding))]
        if not inbox.conn.connected:
            # nats-py would buffer it, but then a lost answer could not be told from a slow
            # one: fail these calls now (the proxy stays usable for after the reconnect).
            with inbox.cond:
                inbox.failure(reply, error_object(
                    SERVER_ERROR, f"{inbox.what}: not connected to the NATS server (reconnecting); "
                    "the call was not sent", type_name="ChannelClosed"))
            return
        try:
            inbox.conn.publish_nowait(self.subject, data, reply=reply, timeout=timeout)
        except BaseException:
            with inbox.cond:
                inbox.outstanding.pop(reply, None)
            raise

    def _recv_bytes(self, timeout: float | None) -> bytes:
        inbox = self._inbox
        return _nats.pop_waiting(inbox.cond, inbox.queue, lambda: inbox.closed, timeout,
                                 f"{inbox.what}: closed", f"{inbox.what}: no reply within {timeout} s")


class AsyncNatsChannel:
    """The asyncio face of a :class:`NatsChannel` (for ``interproc.rpc.aio.connect``)."""

    def __init__(self, channel: NatsChannel) -> None:
        self._channel = channel

    @classmethod
    async def connect(cls, address: str, *, timeout: float | None = None, **creds: Any) -> AsyncNatsChannel:
        # Connecting and subscribing happen on the private NATS loop; wait for them off this loop.
        return cls(await asyncio.to_thread(NatsChannel, address, timeout=timeout, **creds))

    async def send(self, data: bytes) -> None:
        self._channel.send(data)  # hands the bytes to the NATS loop; never blocks for long

    async def recv(self) -> bytes:
        inbox = self._channel._inbox
        loop = asyncio.get_running_loop()
        while True:
            with inbox.cond:
                if inbox.queue:
                    return inbox.queue.popleft()
                if inbox.closed or self._channel.closed:
                    raise ChannelClosed(f"{inbox.what}: closed")
                fut = loop.create_future()
                inbox.async_waiters.append((loop, fut))
            await fut

    def close(self) -> None:
        self._channel.close()

    @property
    def closed(self) -> bool:
        return self._channel.closed


class NatsService:
    """The server side: a queue-group subscription answering calls from a thread pool."""

    def __init__(self, exposed: Exposed, address: str, *, workers: int, codecs: tuple[str, ...],
                 tracebacks: bool, timeout: float | None = None, queue_group: str = QUEUE_GROUP,
                 **creds: Any) -> None:
        server, self.subject = _service(address)
        self.exposed = exposed
        self.address = address
        self.codecs = codecs
        self.tracebacks = tracebacks
        self.queue_group = queue_group
        self.conn = _nats.connection(server, timeout=timeout, **creds)
        self.timeout = timeout
        self._pool = concurrent.futures.ThreadPoolExecutor(max(1, workers), thread_name_prefix="interproc-rpc-nats")
        self._sub: Any = None
        self._closed = False
        self.calls = 0  # answered by this server

    def start(self) -> None:
        if self._sub is not None:
            return
        conn = self.conn

        async def on_msg(msg: Any) -> None:
            if msg.reply:
                self._pool.submit(self._handle, msg.data, msg.reply)

        async def subscribe() -> Any:
            sub = await conn.nc.subscribe(self.subject, queue=self.queue_group, cb=on_msg)
            await conn.nc.flush(timeout=max(1, self.timeout or 5))
            return sub

        self._sub = _nats.loop_thread().run(subscribe(), None if self.timeout is None else self.timeout + 1,
                                            f"{self.address}: subscribe")

    def _handle(self, data: bytes, reply: str) -> None:
        proto = Protocol(codec=_codec_of(data), codecs=self.codecs)
        out: list[bytes] = []
        for ev in proto.receive(data):
            if isinstance(ev, Send):
                out.append(ev.data)
            elif isinstance(ev, Call):
                answer = self._run(proto, ev)
                if answer is not None:
                    out.append(answer)
        for answer in out:
            if self._closed:
                return
            self.calls += 1
            try:
                self.conn.publish_nowait(reply, answer, timeout=self.timeout)
            except Exception:  # the caller is unreachable: as with any lost reply, its call times out
                pass

    def _run(self, proto: Protocol, call: Call) -> bytes | None:
        try:
            entry = self.exposed.resolve(call.method, call.args, call.kwargs)
            value = entry.fn(*call.args, **call.kwargs)
            if entry.is_async:
                import asyncio

                value = asyncio.run(value)
        except Fault as exc:
            return proto.fail(call, exc)
        except Exception as exc:  # a bug in the method never stops the server
            return proto.fail(call, exc, traceback.format_exc() if self.tracebacks else "")
        return proto.reply(call, value)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._sub is not None:
            try:
                _nats.loop_thread().run(self._sub.unsubscribe(), 5, f"{self.address}: unsubscribe")
            except Exception:  # the connection is gone: so is the subscription
                pass
        self._pool.shutdown(wait=True, cancel_futures=True)

