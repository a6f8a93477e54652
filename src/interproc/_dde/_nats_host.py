"""The server's side of DDE on NATS (see :mod:`._nats`): a ``dde.Server``'s items mirrored
into a JetStream key-value bucket, its calls answered on ``interproc.dde.<service>``.

Also the naming rules both sides share: the bucket of a service, the key of
an item, the bytes of a value.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
import string
import threading
import weakref
from typing import Any

from .. import _nats
from .._errors import AlreadyExists, NotFound, ProtocolError
from .._naming import validate_name
from ._protocol import SYSTEM, TEXT, ClientConversation, Execute, Poke, ServerConversation, decode_sample, dump

KIND = "dde"
BUCKET_PREFIX = "interproc_dde_"
_SAFE = frozenset(string.ascii_letters + string.digits + "_-")
_CALLS = ("initiate", "request", "poke", "execute")  # what a request may carry (links are watches)


def bucket_name(service: str) -> str:
    """The key-value bucket of a service (bucket names allow only letters, digits, '_' and '-')."""
    validate_name(service, "DDE service name")
    return BUCKET_PREFIX + service.replace("_", "__").replace(".", "_d")


def _token(text: str) -> str:
    # Every byte outside [A-Za-z0-9_-] as =XX: a topic or item is one key token, never '.', '*' or '>'.
    return "".join(c if c in _SAFE else "".join(f"={b:02X}" for b in c.encode()) for c in text)


def item_key(topic: str, item: str) -> str:
    return f"{_token(topic)}.{_token(item)}"


def pack(wire: tuple[str, str]) -> bytes:
    fmt, text = wire
    return fmt.encode() + b"\0" + (text.encode() if fmt == TEXT else base64.b64decode(text))


def _unpack(data: bytes, what: str) -> str | bytes:
    got = decode_sample(data) if data else None
    if got is None:
        raise ProtocolError(f"{what}: the bucket holds a value with no format")
    return got[1]


def _server_of(address: str, what: str) -> str:
    server, path = _nats.split(address)
    if path:
        raise ValueError(f"{what} {address!r}: give the NATS server only (nats://HOST:PORT); "
                         "the service is the first argument")
    return server



# -- the server's side ------------------------------------------------------------
class NatsHost:
    """The NATS face of a ``dde.Server``: its items mirrored into a bucket, its calls answered."""

    def __init__(self, server: Any, address: str, *, timeout: float | None = None, workers: int = 4,
                 **creds: Any) -> None:
        self._server = weakref.ref(server)  # the server owns this; a callback must not keep it alive
        self.service = server.service
        self.subject = _nats.subject(KIND, self.service)
        self.bucket = bucket_name(self.service)
        self.conn = _nats.connection(_server_of(address, "DDE host"), timeout=timeout, **creds)
        self.what = f"DDE service {self.service!r} on {_nats.redact(self.conn.server)}"
        self.timeout = timeout
        self._lock = threading.Lock()
        self._dirty: dict[str, bytes] = {}  # key -> newest value not yet in the bucket
        self._pumping = False
        self._closed = False
        self._kv: Any = None
        self._sub: Any = None
        self._pool = concurrent.futures.ThreadPoolExecutor(max(1, workers), thread_name_prefix="interproc-dde-nats")
        #: puts that failed (the broker was away); the value is put again after the reconnect
        self.failed_puts = 0
        probe = ClientConversation(self.service, SYSTEM).initiate()[1]
        self._run(self._setup(b"[" + probe + b"]"), "create the bucket")
        self.mirror_all()
        self.conn.add_reconnect_listener(self._on_reconnect)

    def _run(self, coro: Any, what: str) -> Any:
        wait = None if self.timeout is None else self.timeout + 5
        return _nats.loop_thread().run(coro, wait, f"{self.what}: {what}")

    async def _setup(self, probe: bytes) -> None:
        from nats import errors

        try:
            await self.conn.nc.request(self.subject, probe, timeout=1)
        except (errors.NoRespondersError, errors.TimeoutError):
            pass
        else:
            raise AlreadyExists(f"{self.what}: another server already serves that name")
        try:  # a bucket nobody serves was left by a server that died: its items are stale
            await self.conn.nc.jetstream().delete_key_value(self.bucket)
        except Exception:  # none there (the usual case), or no JetStream: _ensure_bucket says which
            pass
        self._kv = await self._ensure_bucket()

    async def _ensure_bucket(self) -> Any:
        from nats.js import errors as js_errors

        js = self.conn.nc.jetstream()
        try:
            return await js.create_key_value(bucket=self.bucket, history=1)
        except (js_errors.ServiceUnavailableError, js_errors.NoStreamResponseError) as exc:
            raise NotFound(f"{self.what}: the NATS server has no JetStream (start it with -js): DDE items "
                           f"live in a key-value bucket ({exc})") from exc

    def start(self) -> None:
        """Answer calls (Server.start)."""
        if self._sub is not None:
            return

        async def on_msg(msg: Any) -> None:
            if msg.reply:
                self._pool.submit(self._answer, msg.data, msg.reply)

        async def subscribe() -> Any:
            sub = await self.conn.nc.subscribe(self.subject, cb=on_msg)
            await self.conn.nc.flush(timeout=5)
            return sub

        self._sub = self._run(subscribe(), "subscribe")

    # -- items into the bucket --------------------------------------------------
    def changed(self, topic: str, item: str, wire: tuple[str, str]) -> None:
        """An item was set (called under the server's lock): put it soon; never waits."""
        with self._lock:
            self._dirty[item_key(topic, item)] = pack(wire)
            if self._pumping or self._closed:
                return
            self._pumping = True
        loop = _nats.loop_thread().loop
        loop.call_soon_threadsafe(lambda: loop.create_task(self._pump()))

    async def _pump(self) -> None:
        while True:
            with self._lock:
                if not self._dirty or self._closed or self._kv is None:
                    self._pumping = False
                    return
                key = next(iter(self._dirty))
                value = self._dirty.pop(key)
            try:
                await self._kv.put(key, value)
            except Exception:
                # The broker is away: keep the value (unless a newer one came) for the reconnect.
                with self._lock:
                    self._dirty.setdefault(key, value)
                    self.failed_puts += 1
                    self._pumping = False
                return

    def _on_reconnect(self) -> None:
        _nats.loop_thread().loop.create_task(self._resync())

    async def _resync(self) -> None:
        from nats.js import errors as js_errors

        lost = False
        for attempt in range(100):  # JetStream may need a moment after a restart to load its streams
            if self._closed:
                return
            try:
                try:
                    self._kv = await self.conn.nc.jetstream().key_value(self.bucket)
                except js_errors.BucketNotFoundError:
                    if attempt < 20:  # not loaded yet, or really lost: ask again for 2 s first
                        raise
                    self._kv, lost = await self._ensure_bucket(), True
                break
            except Exception:
                await asyncio.sleep(0.1)
        else:
            return
        server = self._server()
        if lost and server is not None:
            self.mirror_all()  # the broker lost the bucket: every item again (starts the pump)
        with self._lock:
            if self._pumping or not self._dirty:
                return
            self._pumping = True
        await self._pump()

    def mirror_all(self) -> None:
        """Put every item the server has now (at creation)."""
        server = self._server()
        if server is None:
            return
        with server._lock:
            for topic, items in server._store.topics.items():
                for item, wire in items.items():
                    self.changed(topic, item, wire)

    # -- calls ------------------------------------------------------------------
    def _answer(self, data: bytes, reply: str) -> None:
        server = self._server()
        if server is None or self._closed:
            return
        out = self._replies(server, data)
        try:
            self.conn.publish_nowait(reply, b"[" + b",".join(out) + b"]", timeout=5)
        except Exception:  # the caller is unreachable: its call times out, as any lost reply
            pass

    def _replies(self, server: Any, data: bytes) -> list[bytes]:
        rid = 0
        try:
            frames = json.loads(data)
            if not isinstance(frames, list) or not 1 <= len(frames) <= 2 or \
                    not all(isinstance(f, dict) for f in frames):
                raise ProtocolError("a DDE request over NATS is a list of one or two frames")
            proto = ServerConversation(server._store)
            out: list[bytes] = []
            for frame in frames:
                rid = frame.get("id", 0) if isinstance(frame.get("id"), int) else 0
                if frame.get("op") not in _CALLS:
                    raise ProtocolError(f"{frame.get('op')!r} is not a DDE call over NATS (links are watches)")
                with server._lock:
                    events = proto.receive(dump(frame))
                for event in events:
                    self._handle(server, proto, event)
                with server._lock:
                    while (got := proto.next_frame()) is not None:
                        out.append(got)
                if out and not json.loads(out[-1]).get("ok"):
                    break  # the initiate failed (no such topic): that is the answer
            return out
        except (ProtocolError, ValueError, UnicodeDecodeError) as exc:
            server.protocol_errors += 1
            return [dump({"id": rid, "ok": False, "error": "ProtocolError", "message": str(exc)})]

    @staticmethod
    def _handle(srv: Any, proto: ServerConversation, event: Poke | Execute) -> None:
        # The server's own poke/execute rules (ServerState), for a conversation that lives one request.
        topic = proto.topic or ""
        handler, refused = srv.handler_for(event, topic)
        error: BaseException | None = None
        result = None
        if handler is not None:
            try:
                refused, result = srv.after_handler(event, topic, srv.call_handler(handler, event, topic))
            except Exception as exc:
                error = exc
        with srv._lock:
            proto.answer(event.id, error, refused=refused, result=result)

    def close(self) -> None:
        """Stop answering, tell the clients, delete the bucket."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.conn.remove_reconnect_listener(self._on_reconnect)

        async def down() -> None:
            if self._sub is not None:
                await self._sub.unsubscribe()
            await self.conn.nc.publish(self.subject + ".closed", b"")
            try:
                await self.conn.nc.jetstream().delete_key_value(self.bucket)
            except Exception:  # already gone (or the broker is away): nothing left to free
                pass
            await self.conn.nc.flush(timeout=5)

        try:
            self._run(down(), "close")
        except Exception:  # the broker is away: clients see their calls fail instead
            pass
        self._pool.shutdown(wait=True, cancel_futures=True)
