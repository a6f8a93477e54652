"""The asyncio client: ``await objects.aio.connect(address)``; proxies whose calls are awaited.

Same wire, marshalling and reference counting as the blocking client (the
Session's code, with the rpc helper's AsyncEndpoint moving the bytes).
Methods: ``await c.area()``; properties: ``await c.radius`` and
``await c.set("radius", 3.0)``; ``await c.query_interface(I)``.  Callbacks
into the client run on its event loop (``async def`` methods are awaited).
The asyncio server is in :mod:`._aio_server` (``objects.aio.Server``).
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from .._errors import ChannelClosed, HandleClosed, RemoteError
from .._rpc._aio import AsyncEndpoint
from .._rpc._protocol import INVALID_PARAMS, Fault, Protocol
from ._core import REF, Exports, Session, _Handler
from ._proxy import ObjectProxy


class _AsyncHandler(_Handler):
    def __init__(self, fn: Any) -> None:
        super().__init__(fn)
        self.is_async = True


class AsyncSession(Session):
    def __init__(self, channel: Any, *, timeout: float | None = None, exports: Exports | None = None,
                 factory: Any = None, hello: Any = None, classes: Any = None, codecs: tuple[str, ...] | None = None,
                 tracebacks: bool = True) -> None:
        # The reader task always reads; a server passes its exports and its
        # obj.create / obj.hello / obj.classes answers, as to the blocking Session.
        self._setup(exports if exports is not None else Exports(), factory, hello, classes, True)
        self._handlers["obj.call"] = _AsyncHandler(self._ah_call)
        self.loop = asyncio.get_running_loop()
        kw = {} if codecs is None else {"codecs": codecs}
        self.ep = AsyncEndpoint(channel, exposed=self, protocol=Protocol(**kw), timeout=timeout)  # type: ignore[arg-type]
        self.ep.tracebacks = tracebacks

    async def _ah_call(self, oid: Any, name: Any, args: Any = (), kwargs: Any = None) -> Any:
        value = self._invoke(oid, name, args, kwargs)
        if inspect.isawaitable(value):
            value = await value
        return self.dump(value)

    def _describe_now(self, cid: Any) -> dict[str, Any]:
        # Descriptions come inline with a class's first reference, and acall() fetches
        # the missing ones before unpacking; only a reply raced by another can get here.
        raise Fault(INVALID_PARAMS, f"class #{cid} arrived before its description")

    def _missing(self, v: Any, out: set[Any]) -> None:
        t = type(v)
        if t is list:
            for x in v:
                self._missing(x, out)
        elif t is dict:
            ref = v.get(REF) if len(v) == 1 else None
            if isinstance(ref, list) and len(ref) >= 3 and ref[0] == "m":
                if len(ref) > 3 and isinstance(ref[3], dict):
                    self._classes[ref[2]] = ref[3]
                elif ref[2] not in self._classes:
                    out.add(ref[2])
            else:
                for x in v.values():
                    self._missing(x, out)

    async def acall(self, method: str, *params: Any, timeout: Any = None) -> Any:
        ep = self.ep
        value = await ep.call(method, [self.dump(p) for p in params],
                              timeout=ep.timeout if timeout is None else timeout)
        missing: set[Any] = set()
        self._missing(value, missing)
        for cid in missing:
            self._classes[cid] = await ep.call("obj.describe", [cid])
        return self.load(value)

    def notify_release(self, oid: int, n: int) -> None:
        """From any thread (the releaser's, or the loop's own)."""
        with self._lock:
            wr = self._imports.get(oid)
            if wr is not None and wr() is None:
                del self._imports[oid]
        try:
            self.loop.call_soon_threadsafe(self._release_soon, oid, n)
        except RuntimeError:
            pass  # the loop is closed: so is the connection

    def _release_soon(self, oid: int, n: int) -> None:
        if not self.ep.closed:
            task = self.loop.create_task(self._release(oid, n))
            self.ep._tasks.add(task)
            task.add_done_callback(self.ep._tasks.discard)

    async def _release(self, oid: int, n: int) -> None:
        try:
            await self.ep.notify("obj.release", [oid, n])
        except (ChannelClosed, HandleClosed, OSError):
            pass

    def closed_by_peer(self) -> None:  # the blocking Session's teardown does not apply
        self.exports.drop(self)


class _AsyncMethod:
    __slots__ = ("_proxy", "_name", "__signature__")

    def __init__(self, proxy: AsyncObjectProxy, name: str, sig: inspect.Signature | None = None) -> None:
        self._proxy, self._name = proxy, name
        if sig is not None:
            self.__signature__ = sig

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        sig = getattr(self, "__signature__", None)
        if sig is not None:
            sig.bind(*args, **kwargs)
        p = self._proxy
        p._check()
        return await p._session.acall("obj.call", p._oid, self._name, list(args), kwargs)


class AsyncObjectProxy(ObjectProxy):
    """A remote object for asyncio: ``await c.area()``, ``await c.radius``,
    ``await c.set("radius", 3.0)``, ``await c.query_interface(I)``; ``close()`` releases."""

    __slots__ = ()

    def _method(self, name: str, sig: inspect.Signature | None = None) -> Any:
        return _AsyncMethod(self, name, sig)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        m = self._methods.get(name)
        if m is None and name in self._desc.get("methods", ()):
            m = self._methods[name] = self._method(name)
        if m is not None:
            return m
        return self.get(name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"use 'await proxy.set({name!r}, value)' on an asyncio proxy")

    async def get(self, name: str) -> Any:
        """The remote property or public attribute ``name``."""
        self._check()
        try:
            return await self._session.acall("obj.get", self._oid, name)
        except RemoteError as exc:
            if exc.remote_type in ("AttributeError", "MethodNotFound"):
                raise AttributeError(exc.message) from None
            raise

    async def set(self, name: str, value: Any) -> None:
        """Set the remote property or existing public attribute ``name``."""
        self._check()
        try:
            await self._session.acall("obj.set", self._oid, name, value)
        except RemoteError as exc:
            if exc.remote_type in ("AttributeError", "MethodNotFound"):
                raise AttributeError(exc.message) from None
            raise

    async def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self._check()
        return await self._session.acall("obj.call", self._oid, name, list(args), kwargs)

    async def query_interface(self, interface: Any) -> Any:  # type: ignore[override]
        from ._proxy import InterfaceView, NoInterface

        self._check()
        name = interface if isinstance(interface, str) else getattr(interface, "__name__", None)
        if not isinstance(name, str):
            raise TypeError(f"interface must be a class or a name, not {type(interface).__name__}")
        if not await self._session.acall("obj.qi", self._oid, name):
            raise NoInterface(f"remote {self._desc.get('name')} does not implement {name}")
        return InterfaceView(self, interface)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | {"get", "set"})


AsyncSession.proxy_class = AsyncObjectProxy


class AsyncConnection:
    """asyncio twin of :class:`objects.Connection`."""

    def __init__(self, session: AsyncSession, address: str, terms: dict[str, Any]) -> None:
        self._session = session
        self.address = address
        self.ping_interval: float = float(terms["ping_interval"])
        self.missed_pings: int = int(terms["missed_pings"])
        self._pinger = asyncio.get_running_loop().create_task(self._ping())

    async def _ping(self) -> None:
        ep = self._session.ep
        while True:
            await asyncio.sleep(self.ping_interval)
            try:
                await ep.notify("obj.ping")
            except (ChannelClosed, HandleClosed, OSError):
                return

    async def create(self, progid: str, *args: Any, **kwargs: Any) -> AsyncObjectProxy:
        obj = await self._session.acall("obj.create", progid, list(args), kwargs)
        if not isinstance(obj, AsyncObjectProxy):
            raise TypeError(f"{progid} constructed a plain value, not an object: {obj!r}")
        return obj

    async def classes(self) -> list[dict[str, Any]]:
        return list(await self._session.acall("obj.classes"))

    @property
    def closed(self) -> bool:
        return bool(self._session.ep.closed)

    async def close(self) -> None:
        self._pinger.cancel()
        await self._session.ep.close()
        self._session.closed_by_peer()

    async def __aenter__(self) -> AsyncConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<objects.aio.AsyncConnection {self.address}{' closed' if self.closed else ''}>"


async def connect(address: str, *, timeout: float | None = None, **options: Any) -> AsyncConnection:
    """asyncio twin of :func:`interproc.objects.connect`."""
    from ..aio import connect as aio_connect

    channel = await aio_connect(address, timeout=timeout, **options)
    session = AsyncSession(channel, timeout=timeout)
    try:
        await session.ep.hello(timeout)
        terms = await session.acall("obj.hello")
    except BaseException:
        await session.ep.close()
        raise
    return AsyncConnection(session, address, terms)
