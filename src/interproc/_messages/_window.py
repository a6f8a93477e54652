"""The blocking driver of window messages: ``Window`` and the senders.

Threads only move bytes.  A window has one accept thread and one reader per
connected sender; readers feed frames into :class:`WindowCore` under a lock
and send its immediate replies (posted: queued or full; abort-if-hung).
Handlers run only in the thread that calls ``pump()`` / ``run()``, as a
window procedure runs only in the thread that owns the window.

A sender keeps one connection per window (reused by later calls); a reply
whose id is not the one awaited belongs to an earlier call that timed out
and is dropped.  A large WM_COPYDATA travels through a shared-memory segment
that lives only for the call.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from typing import Any, Callable

import interproc

from .._errors import ChannelClosed, HandleClosed, InterprocError, NotFound, ProtocolError, Timeout
from .._naming import Scope
from ..shm import SharedMemory
from ._names import window_names, window_path
from ._protocol import (
    BAD_FRAME, DEFAULT_QUEUE_LIMIT, POST, SEND, WM_COPYDATA, Message, SenderCore, WindowCore, check_msg, check_param,
    encode_reply, encode_request, missing_window,
)

Handler = Callable[[Message], Any]
#: copy_data bigger than this goes through shared memory when the window is local.
SHM_THRESHOLD = 256 * 1024
_ACCEPT_SLICE = 0.25
_seg_counter = itertools.count()


class _Peer:
    """One connection and the lock that keeps its frames whole."""

    def __init__(self, ch: Any) -> None:
        self.ch = ch
        self.lock = threading.Lock()
        creds = getattr(ch, "peer_credentials", None)
        self.pid, self.uid = (creds.pid, creds.uid) if creds else (0, -1)

    def send(self, frame: Any) -> None:
        with self.lock:
            self.ch.send(frame)


class Window:
    """A named message endpoint with a bounded queue (``Window("editor")``)."""

    def __init__(self, name: str, *, max_queue: int = DEFAULT_QUEUE_LIMIT, scope: Scope = "user",
                 host: str | None = None, authkey: bytes | None = None, **listen_options: Any) -> None:
        self.name = name
        self.scope: Scope = scope
        self._handlers: dict[int, Handler] = {}
        self._cond = threading.Condition()
        self._core = WindowCore(max_queue=max_queue, now=time.monotonic())
        self._peers: set[_Peer] = set()
        self._closed = False
        self._acking = 0  # replies computed but not yet sent (close() lets them go out first)
        self._quit = False
        #: senders dropped because a frame of theirs did not parse
        self.protocol_errors = 0
        mode = 0o600 if scope == "user" else listen_options.pop("mode", 0o660)
        self._listeners = [interproc.listen(f"unix://{window_path(name, scope)}", mode=mode)]
        self._nats: Any = None  # host="nats://...": a subject on the broker (._nats)
        if host is not None and host.lower().startswith(("nats://", "tls://")):
            from ._nats import NatsPort

            try:
                self._nats = NatsPort(self, host, **listen_options)
            except BaseException:
                self._listeners[0].close()
                raise
        elif host is not None:
            self._listeners.append(interproc.listen(host, authkey=authkey, **listen_options))
        self.address = host if self._nats is not None else self._listeners[-1].address
        self._threads = [threading.Thread(target=self._accept_loop, args=(lst,), daemon=True,
                                          name=f"interproc window {name} accept") for lst in self._listeners]
        for t in self._threads:
            t.start()

    def __repr__(self) -> str:
        return f"<Window {self.name!r}{' closed' if self._closed else ''}>"

    # -- handlers and the message loop ----------------------------------
    def handler(self, msg: int) -> Callable[[Handler], Handler]:
        """Decorator: ``@win.handler(RELOAD)`` makes the function handle that message id."""
        check_msg(msg)

        def register(fn: Handler) -> Handler:
            self._handlers[msg] = fn
            return fn

        return register

    def set_handler(self, msg: int, fn: Handler | None) -> None:
        check_msg(msg)
        if fn is None:
            self._handlers.pop(msg, None)
        else:
            self._handlers[msg] = fn

    def pump(self, timeout: float | None = 0) -> int:
        """Dispatch what is queued; if nothing is, wait up to ``timeout`` for a first message.

        Returns how many messages were dispatched.  ``timeout=None`` waits
        until one arrives (or ``quit()``/``close()``).
        """
        if self._closed:
            raise HandleClosed(f"window {self.name!r} is closed")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._core.pump_state(True, time.monotonic())
            try:
                while not len(self._core) and not self._quit and not self._closed:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        break
                    self._cond.wait(0.5 if left is None else min(left, 0.5))  # slices keep Ctrl-C prompt
            finally:
                self._core.pump_state(False, time.monotonic())
        done = 0
        while True:
            with self._cond:
                m = self._core.pop()
                self._core.pump_state(False, time.monotonic())
            if m is None:
                return done
            self._dispatch(m)
            done += 1

    def run(self) -> None:
        """The message loop: dispatch messages until ``quit()`` or ``close()``."""
        self._quit = False
        while not self._quit and not self._closed:
            self.pump(timeout=None)

    def quit(self) -> None:
        """Make ``run()`` return (PostQuitMessage); safe from any thread or handler."""
        with self._cond:
            self._quit = True
            self._cond.notify_all()

    def _dispatch(self, m: Message) -> None:
        seg = None
        result: Any = 0
        error: BaseException | None = None
        try:
            if m.shm is not None:
                seg = SharedMemory.open(m.shm[0], scope=self.scope)
                if m.shm[1] > seg.size:
                    raise ProtocolError(f"WM_COPYDATA announced {m.shm[1]} bytes in a {seg.size}-byte segment")
                m.data = seg.buf[: m.shm[1]].toreadonly()
            fn = self._handlers.get(m.msg)
            if fn is not None:  # unhandled: 0, as DefWindowProc answers
                result = fn(m)
        except Exception as exc:
            error = exc
        finally:
            if seg is not None:
                m.data = None
                seg.close()
        reply = WindowCore.finish(m, result, error)
        if reply is not None:
            try:
                m.conn.send(reply)
            except (InterprocError, OSError):
                pass  # the sender gave up or died; nobody is waiting

    # -- connections ----------------------------------------------------
    def _accept_loop(self, lst: Any) -> None:
        while not self._closed:
            try:
                ch = lst.accept(timeout=_ACCEPT_SLICE)
            except Timeout:
                continue
            except (ProtocolError, interproc.PermissionDenied, interproc.ChannelClosed):
                continue  # a stranger, a wrong key, or a probe that left: keep serving the others
            except Exception:
                if self._closed:
                    return
                time.sleep(_ACCEPT_SLICE)
                continue
            peer = _Peer(ch)
            if self.scope == "user" and ch.peer_credentials is not None and peer.uid != os.getuid():
                ch.close()  # another user's process: not reachable in the user scope
                continue
            with self._cond:
                if self._closed:
                    ch.close()
                    return
                self._peers.add(peer)
            threading.Thread(target=self._read_loop, args=(peer,), daemon=True,
                             name=f"interproc window {self.name} reader").start()

    def _read_loop(self, peer: _Peer) -> None:
        try:
            while True:
                frame = peer.ch.recv()
                with self._cond:
                    reply = self._core.receive(peer, frame, peer.pid, peer.uid, time.monotonic())
                    if reply is not None:
                        self._acking += 1
                    self._cond.notify_all()
                if reply is not None:
                    # A posted message is queued (and may be dispatched, even close the
                    # window) before its "queued" answer goes out: close() waits for it.
                    try:
                        peer.send(reply)
                    finally:
                        with self._cond:
                            self._acking -= 1
                            self._cond.notify_all()
        except ProtocolError as exc:
            self.protocol_errors += 1  # garbage from this sender: tell it why, then drop it only
            try:
                peer.send(encode_reply(0, BAD_FRAME, {"message": str(exc)}))
            except Exception:
                pass
        except Exception:
            pass  # the sender closed or died
        finally:
            with self._cond:
                self._core.drop_connection(peer)
                self._peers.discard(peer)
            peer.ch.close()

    def pending(self) -> int:
        """How many messages wait in the queue."""
        with self._cond:
            return len(self._core)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Destroy the window: senders waiting on it get ``NotFound``."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            deadline = time.monotonic() + 1.0  # bounded: a sender that does not read cannot hold us
            while self._acking and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            peers = list(self._peers)
            self._cond.notify_all()
        if self._nats is not None:
            self._nats.close()
        for lst in self._listeners:
            lst.close()
        for peer in peers:
            peer.ch.close()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=2)

    def __enter__(self) -> "Window":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()


# -- senders --------------------------------------------------------------------

class _Link:
    """A sender's connection to one window, reused by later calls."""

    def __init__(self, ch: Any, local: bool) -> None:
        self.ch = ch
        self.local = local
        self.lock = threading.Lock()
        self.core = SenderCore()


_links: dict[tuple, _Link] = {}
_links_lock = threading.Lock()


def _target(name: str, host: str | None, scope: Scope) -> str:
    return host if host is not None else f"unix://{window_path(name, scope)}"


def _open_link(name: str, host: str | None, authkey: bytes | None, scope: Scope, timeout: float | None) -> _Link:
    try:
        ch = interproc.connect(_target(name, host, scope), timeout=timeout if host else None,
                               **({"authkey": authkey} if authkey is not None else {}))
    except (NotFound, ChannelClosed):  # nobody listens, or its owner is dying
        raise missing_window(name) from None
    creds = getattr(ch, "peer_credentials", None)
    if creds is not None and scope == "user" and creds.uid != os.getuid():
        ch.close()
        raise missing_window(name)
    return _Link(ch, host is None)


def _call(name: str, kind: int, msg: int, wparam: int, lparam: int, *, data: Any = None, timeout: float | None,
          abort_if_hung: bool = False, host: str | None = None, authkey: bytes | None = None,
          scope: Scope = "user") -> Any:
    check_msg(msg)
    check_param(wparam, "wparam")
    check_param(lparam, "lparam")
    if host is not None and host.lower().startswith(("nats://", "tls://")):  # through the broker (._nats)
        from ._nats import call

        return call(name, kind, msg, wparam, lparam, data=data, timeout=timeout, abort_if_hung=abort_if_hung,
                    address=host)
    key = (name, host, scope, authkey)  # a connection made with one key is never reused for another
    deadline = None if timeout is None else time.monotonic() + timeout
    for attempt in (0, 1):
        with _links_lock:
            link = _links.get(key)
        fresh = link is None
        if link is None:
            link = _open_link(name, host, authkey, scope, timeout)
            with _links_lock:
                _links[key] = link
        try:
            return _exchange(link, name, kind, msg, wparam, lparam, data, deadline, abort_if_hung, scope)
        except ChannelClosed:
            with _links_lock:
                if _links.get(key) is link:
                    del _links[key]
            link.ch.close()
            if fresh or attempt:  # the window's owner closed it or died while we waited
                raise missing_window(name) from None
            # a cached connection to a window that has since gone: try once afresh
    raise AssertionError("unreachable")


def _exchange(link: _Link, name: str, kind: int, msg: int, wparam: int, lparam: int, data: Any,
              deadline: float | None, abort_if_hung: bool, scope: Scope) -> Any:
    seg = None
    with link.lock:
        try:
            req_id = link.core.next_id()
            shm = None
            if data is not None and link.local and len(memoryview(data).cast("B")) > SHM_THRESHOLD:
                view = memoryview(data).cast("B")
                seg = SharedMemory.create(f"msgcd.{os.getpid()}.{next(_seg_counter)}.{os.urandom(4).hex()}",
                                          len(view), scope=scope)
                seg.buf[: len(view)] = view
                shm, data = (seg.name, len(view)), None
            frame = encode_request(kind, req_id, msg, wparam, lparam, data=data, shm=shm, abort_if_hung=abort_if_hung)
            link.ch.send(b"".join(frame))
            while True:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise Timeout(f"window {name!r} did not answer within the timeout (is it pumping messages?)")
                try:
                    reply = link.ch.recv(timeout=left)
                except Timeout:
                    raise Timeout(f"window {name!r} did not answer within the timeout "
                                  "(is it pumping messages?)") from None
                if SenderCore.reply_id(reply) == req_id:
                    return SenderCore.result(reply, name)
        finally:
            if seg is not None:
                seg.close()


def send_message(name: str, msg: int, wparam: int = 0, lparam: int = 0, *, data: Any = None,
                 timeout: float | None = 5.0, abort_if_hung: bool = False, host: str | None = None,
                 authkey: bytes | None = None, scope: Scope = "user") -> Any:
    """SendMessageTimeout: queue ``msg`` at window ``name`` and wait for its handler's result.

    ``Timeout`` if the window does not answer in time (at once, with
    ``abort_if_hung=True``, if its owner has not pumped for 5 s); ``NotFound``
    at once if no such window exists or its owner died; ``RemoteError`` if the
    handler raised.
    """
    return _call(name, SEND, msg, wparam, lparam, data=data, timeout=timeout, abort_if_hung=abort_if_hung,
                 host=host, authkey=authkey, scope=scope)


def post_message(name: str, msg: int, wparam: int = 0, lparam: int = 0, *, data: Any = None,
                 timeout: float | None = 5.0, host: str | None = None, authkey: bytes | None = None,
                 scope: Scope = "user") -> None:
    """PostMessage: queue ``msg`` and return once it is queued (not handled).

    ``QueueFull`` if the window already holds its limit of posted messages.
    """
    _call(name, POST, msg, wparam, lparam, data=data, timeout=timeout, host=host, authkey=authkey, scope=scope)


def copy_data(name: str, data: Any, tag: int = 0, *, timeout: float | None = 5.0, host: str | None = None,
              authkey: bytes | None = None, scope: Scope = "user") -> Any:
    """WM_COPYDATA: hand ``data`` (any buffer) to the window's handler and return its result.

    ``tag`` arrives as ``m.lparam`` (``m.tag``), as ``dwData``.
    """
    memoryview(data)  # TypeError at once for a non-buffer
    return _call(name, SEND, WM_COPYDATA, 0, tag, data=data, timeout=timeout, host=host, authkey=authkey,
                 scope=scope)


def find_window(name: str, *, scope: Scope = "user") -> tuple[str, int] | None:
    """``(name, owner_pid)`` if a live window has that name, else None (FindWindow)."""
    try:
        ch = interproc.connect(f"unix://{window_path(name, scope)}")
    except (NotFound, ChannelClosed, interproc.PermissionDenied):
        return None
    try:
        creds = ch.peer_credentials
        if scope == "user" and creds.uid != os.getuid():
            return None
        return (name, creds.pid)
    finally:
        ch.close()


def windows(*, scope: Scope = "user") -> list[tuple[str, int]]:
    """``[(name, owner_pid)]`` of every live window of this user."""
    found = []
    for n in window_names(scope):
        try:
            w = find_window(n, scope=scope)
        except (ValueError, InterprocError):
            continue
        if w is not None:
            found.append(w)
    return found


def broadcast_message(msg: int, wparam: int = 0, lparam: int = 0, *, timeout: float | None = 1.0,
                      scope: Scope = "user") -> dict[str, Any]:
    """Send ``msg`` to every window of this user at once: ``{name: result or the exception}``.

    Unlike HWND_BROADCAST, every window gets the same ``timeout`` in parallel
    (not one after another), and each window's result is reported.
    """
    results: dict[str, Any] = {}

    def one(n: str) -> None:
        try:
            results[n] = send_message(n, msg, wparam, lparam, timeout=timeout, scope=scope)
        except Exception as exc:  # reported per window, never raised
            results[n] = exc

    threads = [threading.Thread(target=one, args=(n,), daemon=True) for n, _ in windows(scope=scope)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(None if timeout is None else timeout + 5)
    return dict(sorted(results.items()))
