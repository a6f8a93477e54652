"""The asyncio driver: the same :class:`Protocol`, with a reader task per connection.

The reader task receives every message: replies resolve their futures, and
each incoming call runs as its own task, so replies leave in the order the
calls finish.  A method may be ``async def`` (awaited) or plain (called on
the event loop: keep those quick, or make them coroutines).
"""

from __future__ import annotations

import asyncio
import traceback
from typing import Any, Callable, Generic, TypeVar, overload

from .._errors import ChannelClosed, HandleClosed, InterprocError, NotFound, RemoteError, Timeout
from .._nats import is_nats
from ._client import InterfaceChecks, interface_methods
from ._dispatch import Exposed
from ._lines import aio_connect_lines, aio_listen_lines, is_line_address
from ._nats import AsyncNatsChannel
from ._protocol import AVAILABLE, METHOD_NOT_FOUND, Call, Failure, Fault, Protocol, Result, Send

T = TypeVar("T")
_UNSET: Any = object()


class AsyncEndpoint:
    """Calls out and (with ``exposed``) calls in over one asyncio channel."""

    def __init__(self, channel: Any, *, exposed: Exposed | None = None, protocol: Protocol | None = None,
                 timeout: float | None = None) -> None:
        self.channel = channel
        self.proto = protocol or Protocol()
        self.exposed = exposed
        self.timeout = timeout
        self.tracebacks = True  # send the remote traceback text with an error
        self._waiting: dict[Any, asyncio.Future[Any]] = {}
        self._send_lock = asyncio.Lock()
        self._closed: BaseException | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reader = asyncio.get_running_loop().create_task(self._read_loop())

    async def _send(self, data: bytes) -> None:
        if self._closed is not None:
            raise type(self._closed)(str(self._closed))
        async with self._send_lock:
            try:
                await self.channel.send(data)
            except (ChannelClosed, HandleClosed, OSError) as exc:
                self._fail_all(exc if isinstance(exc, InterprocError) else ChannelClosed(str(exc)))
                raise self._closed from exc  # type: ignore[misc]

    def _new(self, rid: Any) -> asyncio.Future[Any]:
        fut = self._waiting[rid] = asyncio.get_running_loop().create_future()
        return fut

    async def _result(self, rid: Any, fut: asyncio.Future[Any], method: str, timeout: float | None) -> Any:
        timeout = self.timeout if timeout is _UNSET else timeout
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except asyncio.TimeoutError:
            raise Timeout(f"call {method}() timed out after {timeout} s") from None
        finally:
            if not fut.done():  # timed out or the awaiting task was cancelled
                self.proto.cancel(rid)
                self._waiting.pop(rid, None)
                fut.cancel()

    async def call(self, method: str, args: Any = (), kwargs: dict[str, Any] | None = None,
                   timeout: float | None = _UNSET) -> Any:
        if self._closed is not None:
            raise type(self._closed)(str(self._closed))
        rid, data = self.proto.request(method, args, kwargs)
        fut = self._new(rid)
        await self._send(data)
        return await self._result(rid, fut, method, timeout)

    async def notify(self, method: str, args: Any = (), kwargs: dict[str, Any] | None = None) -> None:
        await self._send(self.proto.notification(method, args, kwargs))

    async def batch(self, calls: list[tuple[str, Any, dict[str, Any] | None, bool]]) -> list[Any]:
        ids, data = self.proto.batch(calls)
        futs = [None if rid is None else self._new(rid) for rid in ids]
        await self._send(data)
        return [None if f is None else (rid, f) for rid, f in zip(ids, futs)]

    async def hello(self, timeout: float | None) -> None:
        rid, data = self.proto.hello()
        fut = self._new(rid)
        await self._send(data)
        await self._result(rid, fut, "rpc.hello", timeout)

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self.channel.recv()
                for ev in self.proto.receive(data):
                    if type(ev) is Result:
                        fut = self._waiting.pop(ev.id, None)
                        if fut is not None and not fut.done():
                            fut.set_result(ev.value)
                    elif type(ev) is Failure:
                        fut = self._waiting.pop(ev.id, None) if ev.id is not None else None
                        if fut is not None and not fut.done():
                            fut.set_exception(ev.error)
                    elif type(ev) is Send:
                        await self._send(ev.data)
                    else:
                        task = asyncio.get_running_loop().create_task(self._run(ev))  # type: ignore[arg-type]
                        self._tasks.add(task)
                        task.add_done_callback(self._tasks.discard)
        except (ChannelClosed, HandleClosed, OSError) as exc:
            self._fail_all(exc if isinstance(exc, InterprocError) else ChannelClosed(str(exc)))
        except asyncio.CancelledError:
            self._fail_all(HandleClosed("the RPC connection was closed"))
            raise

    async def _run(self, call: Call) -> None:
        try:
            if self.exposed is None:
                raise Fault(METHOD_NOT_FOUND, "this end exposes no object")
            entry = self.exposed.resolve(call.method, call.args, call.kwargs)
            value = entry.fn(*call.args, **call.kwargs)
            if entry.is_async:
                value = await value
        except Fault as exc:
            data = self.proto.fail(call, exc)
        except Exception as exc:  # a bug in the method never stops the server
            data = self.proto.fail(call, exc, traceback.format_exc() if self.tracebacks else "")
        else:
            data = self.proto.reply(call, value)
        if data is not None:
            try:
                await self._send(data)
            except (ChannelClosed, HandleClosed):
                pass

    def _fail_all(self, error: BaseException) -> None:
        if self._closed is None:
            self._closed = error
        waiting, self._waiting = self._waiting, {}
        self.proto.abandon()
        for fut in waiting.values():
            if not fut.done():
                lost = HandleClosed if isinstance(error, HandleClosed) else ChannelClosed
                fut.set_exception(lost(f"call lost: {error}"))

    @property
    def closed(self) -> bool:
        return self._closed is not None

    async def wait_closed(self) -> None:
        await asyncio.shield(self._reader)

    async def close(self) -> None:
        self._fail_all(HandleClosed("the RPC connection was closed"))
        self._reader.cancel()
        for task in list(self._tasks):
            task.cancel()
        self.channel.close()
        try:
            await self._reader
        except (asyncio.CancelledError, Exception):
            pass


def _copy_to(mine: asyncio.Future[Any]) -> Any:
    def done(theirs: asyncio.Future[Any]) -> None:
        if mine.done():
            return
        if theirs.cancelled():
            mine.cancel()
        elif theirs.exception() is not None:
            mine.set_exception(theirs.exception())  # type: ignore[arg-type]
        else:
            mine.set_result(theirs.result())
    return done


class AsyncBatch:
    """``async with p.batch() as b: f = b.add(1, 2)`` then ``await f``."""

    def __init__(self, proxy: AsyncProxy[Any]) -> None:
        self._proxy = proxy
        self._calls: list[tuple[str, Any, dict[str, Any] | None, bool]] = []
        self._futures: list[asyncio.Future[Any]] = []

    def call(self, method: str, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        self._proxy._check_name(method, args, kwargs)
        self._calls.append((method, args, kwargs or None, False))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._futures.append(fut)
        return fut

    def notify(self, method: str, *args: Any, **kwargs: Any) -> None:
        self._proxy._check_name(method, args, kwargs)
        self._calls.append((method, args, kwargs or None, True))
        self._futures.append(asyncio.get_running_loop().create_future())

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self.call(name, *args, **kwargs)

    async def send(self) -> None:
        if not self._calls:
            return
        sent = await self._proxy._ep.batch(self._calls)
        for mine, theirs in zip(self._futures, sent):
            if theirs is None:
                mine.set_result(None)
            else:
                theirs[1].add_done_callback(_copy_to(mine))

    async def __aenter__(self) -> AsyncBatch:
        return self

    async def __aexit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            await self.send()


class AsyncProxy(InterfaceChecks, Generic[T]):
    """The asyncio proxy: ``await p.add(1, 2)``."""

    def __init__(self, ep: AsyncEndpoint, address: str, interface: Any = None) -> None:
        self._ep, self.address, self._interface = ep, address, interface
        self._sigs = interface_methods(interface) if interface is not None else None

    @property
    def codec(self) -> str:
        return self._ep.proto.codec

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._sigs is not None and name not in self._sigs:
            raise AttributeError(f"{self._interface.__name__} has no method {name!r}")

        def method(*args: Any, **kwargs: Any) -> Any:
            self._check_name(name, args, kwargs)
            return self._ep.call(name, args, kwargs or None)

        method.__name__ = name
        return method

    async def call(self, method: str, *args: Any, timeout: float | None = _UNSET, **kwargs: Any) -> Any:
        self._check_name(method, args, kwargs)
        return await self._ep.call(method, args, kwargs or None, timeout)

    async def notify(self, method: str, *args: Any, **kwargs: Any) -> None:
        self._check_name(method, args, kwargs)
        await self._ep.notify(method, args, kwargs or None)

    def batch(self) -> AsyncBatch:
        return AsyncBatch(self)

    def as_(self, interface: Callable[..., T]) -> T:
        return AsyncProxy(self._ep, self.address, interface)  # type: ignore[return-value]

    @property
    def closed(self) -> bool:
        return self._ep.closed

    async def close(self) -> None:
        await self._ep.close()

    async def __aenter__(self) -> AsyncProxy[T]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


@overload
async def connect(address: str, *, interface: Callable[..., T], timeout: float | None = ..., codec: str | None = ...,
                  **options: Any) -> T: ...
@overload
async def connect(address: str, *, interface: None = ..., timeout: float | None = ..., codec: str | None = ...,
                  **options: Any) -> AsyncProxy[Any]: ...
async def connect(address: str, *, interface: Callable[..., T] | None = None, timeout: float | None = None,
                  codec: str | None = None, **options: Any) -> Any:
    """asyncio twin of :func:`interproc.rpc.connect` (interproc addresses)."""
    from ..aio import connect as aio_connect

    if is_line_address(address):
        channel: Any = await aio_connect_lines(address, timeout=timeout, **options)
        ep = AsyncEndpoint(channel, protocol=Protocol(codecs=("json",)), timeout=timeout)
        return AsyncProxy(ep, address, interface)
    if is_nats(address):
        channel = await AsyncNatsChannel.connect(address, timeout=timeout, **options)
        ep = AsyncEndpoint(channel, protocol=Protocol(codecs=AVAILABLE if codec is None else (codec,)),
                           timeout=timeout)
        try:
            await ep.hello(timeout)  # also finds out whether any server has the service
        except RemoteError as exc:
            await ep.close()
            if exc.remote_type == "NotFound":
                raise NotFound(exc.message) from None
            raise
        except BaseException:
            await ep.close()
            raise
        return AsyncProxy(ep, address, interface)
    channel = await aio_connect(address, timeout=timeout, **options)
    offer = AVAILABLE if codec is None else (codec,)
    ep = AsyncEndpoint(channel, protocol=Protocol(codecs=offer), timeout=timeout)
    if offer != ("json",):
        try:
            await ep.hello(timeout)
        except BaseException:
            await ep.close()
            raise
    return AsyncProxy(ep, address, interface)


class AsyncServer:
    """asyncio twin of :class:`interproc.rpc.Server`: ``await srv.start()``, ``await srv.close()``."""

    def __init__(self, obj: Any, address: str, *, codecs: tuple[str, ...] | None = None, tracebacks: bool = True,
                 **options: Any) -> None:
        self.exposed = Exposed(obj)
        self.tracebacks = tracebacks
        self.address = address
        self._options = options
        self._codecs = codecs or AVAILABLE
        self._listener: Any = None
        self._plain: Any = None  # the asyncio server of a jsonrpc+ address
        self._server: Any = None  # interproc.aio.serve's AsyncServer: the accept loop
        self._endpoints: set[AsyncEndpoint] = set()

    async def start(self) -> AsyncServer:
        """Listen and serve in a task; returns the server (``address`` then has the real port)."""
        from ..aio import listen as aio_listen, serve as aio_serve

        if self._listener is None and self._plain is None and is_line_address(self.address):
            self._plain, self.address = await aio_listen_lines(self.address, self._adopt, **self._options)
        elif self._listener is None and self._plain is None:
            self._listener = await aio_listen(self.address, **self._options)
            self.address = self._listener.address
            # The one asyncio accept loop of interproc: a task per connection.
            self._server = await aio_serve(self._listener, self._handle)
        return self

    async def _handle(self, channel: Any) -> None:
        ep = self._adopt(channel)
        try:
            await ep.wait_closed()  # its reader task answers calls until the peer goes
        finally:
            await ep.close()

    def _adopt(self, channel: Any) -> AsyncEndpoint:
        codecs = ("json",) if self._plain is not None else self._codecs
        ep = AsyncEndpoint(channel, exposed=self.exposed, protocol=Protocol(codecs=codecs))
        ep.tracebacks = self.tracebacks
        self._endpoints.add(ep)
        ep._reader.add_done_callback(self._forget(ep))
        return ep

    async def serve_forever(self) -> None:
        await self.start()
        if self._plain is not None:
            await self._plain.serve_forever()
        assert self._server is not None
        await self._server.serve_forever()

    def _forget(self, ep: AsyncEndpoint) -> Any:
        return lambda _task: self._endpoints.discard(ep)

    async def close(self) -> None:
        for ep in list(self._endpoints):  # their handlers end at once
            await ep.close()
        if self._server is not None:
            await self._server.aclose(timeout=1.0)  # closes the listener too
        elif self._listener is not None:
            self._listener.close()
        if self._plain is not None:
            self._plain.close()

    async def __aenter__(self) -> AsyncServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
