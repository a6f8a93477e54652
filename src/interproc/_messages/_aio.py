"""The asyncio driver of window messages: ``AsyncWindow`` (async handlers) and ``a*`` senders.

Same wire, same :class:`WindowCore` and :class:`SenderCore` as the blocking
driver; only the byte moving differs (tasks instead of threads).
"""

from __future__ import annotations

import asyncio
import inspect
import time
import weakref
from typing import Any, Callable

import interproc.aio

from .._errors import ChannelClosed, HandleClosed, InterprocError, NotFound, Timeout
from .._naming import Scope
from ._names import window_path
from ._protocol import (
    DEFAULT_QUEUE_LIMIT, POST, SEND, WM_COPYDATA, Message, SenderCore, WindowCore, check_msg, encode_request, missing_window,
)
from ._window import (
    admitted, attach_data, check_call, check_owner, connect_args, detach_data, not_answered, stage_copydata,
    time_left, windows,
)


class _APeer:
    def __init__(self, ch: Any) -> None:
        self.ch = ch
        creds = getattr(ch, "peer_credentials", None)
        self.pid, self.uid = (creds.pid, creds.uid) if creds else (0, -1)

    async def send(self, frame: bytes) -> None:
        await self.ch.send(frame)  # AsyncChannel writes whole frames; no lock needed in one loop


class AsyncWindow:
    """``async with AsyncWindow("editor") as win: await win.run()``; handlers may be ``async def``."""

    def __init__(self, name: str, *, max_queue: int = DEFAULT_QUEUE_LIMIT, scope: Scope = "user",
                 host: str | None = None, authkey: bytes | None = None, **listen_options: Any) -> None:
        self.name = name
        self.scope: Scope = scope
        self._max_queue = max_queue
        self._handlers: dict[int, Callable[[Message], Any]] = {}
        self._core = WindowCore(max_queue=max_queue, now=time.monotonic())
        self._listener: Any = None
        self._net: Any = None
        self._host, self._net_options = host, dict(listen_options, **({"authkey": authkey} if authkey else {}))
        self.address = ""
        self._tasks: set[asyncio.Task] = set()
        self._serving: list[Any] = []  # interproc.aio.serve: a task per sender
        self._peers: set[_APeer] = set()
        self._wake: asyncio.Event | None = None
        self._closed = False
        self._quit = False
        self._nats: Any = None  # host="nats://...": a subject on the broker (._nats)
        self.protocol_errors = 0
        window_path(name, scope)  # a bad name fails here, not in start()

    async def start(self) -> "AsyncWindow":
        """Create the endpoint (``async with`` does this)."""
        if self._listener is None:
            self._wake = asyncio.Event()
            self._listener = await interproc.aio.listen(f"unix://{window_path(self.name, self.scope)}")
            self.address = self._listener.address
            self._serving.append(await interproc.aio.serve(self._listener, self._serve_peer))
            if self._host is not None and self._host.lower().startswith(("nats://", "tls://")):
                from ._nats import NatsPort

                # connecting and subscribing may take a while: not on this loop
                self._nats = await asyncio.to_thread(NatsPort, self, self._host, loop=asyncio.get_running_loop(),
                                                     **self._net_options)
                self.address = self._host
            elif self._host is not None:
                self._net = await interproc.aio.listen(self._host, **self._net_options)
                self.address = self._net.address
                self._serving.append(await interproc.aio.serve(self._net, self._serve_peer))
        return self

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def handler(self, msg: int) -> Callable[[Callable[[Message], Any]], Callable[[Message], Any]]:
        check_msg(msg)

        def register(fn: Callable[[Message], Any]) -> Callable[[Message], Any]:
            self._handlers[msg] = fn
            return fn

        return register

    async def _serve_peer(self, ch: Any) -> None:
        if not admitted(ch, self.scope):
            return  # another user's process: not reachable in the user scope (serve closes ch)
        peer = _APeer(ch)
        self._peers.add(peer)
        await self._read_loop(peer)

    async def _read_loop(self, peer: _APeer) -> None:
        try:
            while True:
                frame = await peer.ch.recv()
                reply = self._core.receive(peer, frame, peer.pid, peer.uid, time.monotonic())
                assert self._wake is not None
                self._wake.set()
                if reply is not None:
                    await peer.send(reply)
        except Exception:
            pass
        finally:
            self._core.drop_connection(peer)
            self._peers.discard(peer)
            peer.ch.close()

    def _deliver(self, reply_to: Any, frame: bytes) -> bytes | None:
        """A frame from the NATS port (on this loop): queued, or answered at once."""
        if self._closed:
            return None
        answer = self._core.receive(reply_to, frame, 0, -1, time.monotonic())
        assert self._wake is not None
        self._wake.set()
        return answer

    async def pump(self, timeout: float | None = 0) -> int:
        """Dispatch what is queued; if nothing is, wait up to ``timeout`` for a first message."""
        if self._closed:
            raise HandleClosed(f"window {self.name!r} is closed")
        await self.start()
        assert self._wake is not None
        if not len(self._core) and timeout != 0:
            self._core.pump_state(True, time.monotonic())
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            finally:
                self._core.pump_state(False, time.monotonic())
        done = 0
        while (m := self._core.pop()) is not None:
            self._core.pump_state(False, time.monotonic())
            await self._dispatch(m)
            done += 1
        return done

    async def run(self) -> None:
        """Dispatch messages until ``quit()`` or ``close()``."""
        self._quit = False
        while not self._quit and not self._closed:
            await self.pump(timeout=None)

    def quit(self) -> None:
        self._quit = True
        if self._wake is not None:
            self._wake.set()

    async def _dispatch(self, m: Message) -> None:
        seg = None
        result: Any = 0
        error: BaseException | None = None
        try:
            seg = attach_data(m, self.scope)
            fn = self._handlers.get(m.msg)
            if fn is not None:
                result = fn(m)
                if inspect.isawaitable(result):
                    result = await result
        except Exception as exc:
            error = exc
        finally:
            detach_data(m, seg)
        reply = WindowCore.finish(m, result, error)
        if reply is not None:
            try:
                await m.conn.send(reply)
            except (InterprocError, OSError):
                pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._wake is not None:
            self._wake.set()
        for srv in self._serving:
            srv.close()  # closes its listener now, its handler tasks soon after
        for lst in (self._listener, self._net):
            if lst is not None:
                lst.close()
        if self._nats is not None:
            self._nats.close(wait=False)
        for peer in list(self._peers):
            peer.ch.close()
        for task in list(self._tasks):
            task.cancel()

    async def __aenter__(self) -> "AsyncWindow":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await asyncio.sleep(0)  # let the cancelled tasks finish


# -- async senders ----------------------------------------------------------------

class _ALink:
    def __init__(self, ch: Any, local: bool) -> None:
        self.ch, self.local = ch, local
        self.lock = asyncio.Lock()
        self.core = SenderCore()


_alinks: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, _ALink]]" = weakref.WeakKeyDictionary()


async def _acall(name: str, kind: int, msg: int, wparam: int, lparam: int, *, data: Any = None,
                 timeout: float | None, abort_if_hung: bool = False, scope: Scope = "user",
                 host: str | None = None, authkey: bytes | None = None) -> Any:
    check_call(msg, wparam, lparam)
    if host is not None and host.lower().startswith(("nats://", "tls://")):  # through the broker (._nats)
        from ._nats import acall

        return await acall(name, kind, msg, wparam, lparam, data=data, timeout=timeout,
                           abort_if_hung=abort_if_hung, address=host)
    links = _alinks.setdefault(asyncio.get_running_loop(), {})
    key = (name, scope, host, authkey)
    deadline = None if timeout is None else time.monotonic() + timeout
    for attempt in (0, 1):
        link = links.get(key)
        fresh = link is None
        if link is None:
            address, wait, options = connect_args(name, host, authkey, scope, timeout)
            try:
                ch = await interproc.aio.connect(address, timeout=wait, **options)
            except (NotFound, ChannelClosed):
                raise missing_window(name) from None
            check_owner(ch, name, scope)
            link = links[key] = _ALink(ch, host is None)
        try:
            return await _aexchange(link, name, kind, msg, wparam, lparam, data, deadline, abort_if_hung, scope)
        except ChannelClosed:
            if links.get(key) is link:
                del links[key]
            link.ch.close()
            if fresh or attempt:
                raise missing_window(name) from None
    raise AssertionError("unreachable")


async def _aexchange(link: _ALink, name: str, kind: int, msg: int, wparam: int, lparam: int, data: Any,
                     deadline: float | None, abort_if_hung: bool, scope: Scope) -> Any:
    seg = None
    async with link.lock:
        try:
            req_id = link.core.next_id()
            seg, data, shm = stage_copydata(data, link.local, scope)
            await link.ch.send(b"".join(encode_request(kind, req_id, msg, wparam, lparam, data=data, shm=shm,
                                                       abort_if_hung=abort_if_hung)))
            while True:
                left = time_left(deadline, name)
                try:
                    reply = await link.ch.recv(timeout=left)
                except Timeout:
                    raise not_answered(name) from None
                if SenderCore.reply_id(reply) == req_id:
                    return SenderCore.result(reply, name)
        finally:
            if seg is not None:
                seg.close()


async def asend_message(name: str, msg: int, wparam: int = 0, lparam: int = 0, *, data: Any = None,
                        timeout: float | None = 5.0, abort_if_hung: bool = False, scope: Scope = "user",
                        host: str | None = None, authkey: bytes | None = None) -> Any:
    """The asyncio form of :func:`send_message`."""
    return await _acall(name, SEND, msg, wparam, lparam, data=data, timeout=timeout, abort_if_hung=abort_if_hung,
                        scope=scope, host=host, authkey=authkey)


async def apost_message(name: str, msg: int, wparam: int = 0, lparam: int = 0, *, data: Any = None,
                        timeout: float | None = 5.0, scope: Scope = "user", host: str | None = None,
                        authkey: bytes | None = None) -> None:
    """The asyncio form of :func:`post_message`."""
    await _acall(name, POST, msg, wparam, lparam, data=data, timeout=timeout, scope=scope, host=host, authkey=authkey)


async def acopy_data(name: str, data: Any, tag: int = 0, *, timeout: float | None = 5.0,
                     scope: Scope = "user", host: str | None = None, authkey: bytes | None = None) -> Any:
    """The asyncio form of :func:`copy_data`."""
    memoryview(data)
    return await _acall(name, SEND, WM_COPYDATA, 0, tag, data=data, timeout=timeout, scope=scope, host=host,
                        authkey=authkey)


async def abroadcast_message(msg: int, wparam: int = 0, lparam: int = 0, *, timeout: float | None = 1.0,
                             scope: Scope = "user") -> dict[str, Any]:
    """The asyncio form of :func:`broadcast_message`."""
    names = [n for n, _ in await asyncio.to_thread(windows, scope=scope)]

    async def one(n: str) -> Any:
        try:
            return await asend_message(n, msg, wparam, lparam, timeout=timeout, scope=scope)
        except Exception as exc:
            return exc

    results = await asyncio.gather(*(one(n) for n in names))
    return dict(sorted(zip(names, results)))
