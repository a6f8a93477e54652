"""The blocking driver of window messages: ``Window`` and the senders.

Threads only move bytes.  The thread that pumps (``pump()`` / ``run()``)
reads the local senders' connections itself: a short spin over them, then
one ``interproc.wait`` on them and a bell, and no hand-off between threads
on the way to the handler (a kernel wake-up costs tens of µs on a small
machine).  While nobody pumps, or a handler runs long, a background thread
reads them instead, so posts are still queued and answered.  Network senders
(``host=``) keep a reader thread each.  Handlers run only in the pumping
thread, as a window procedure runs only in the thread that owns the window.

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
from ._plumbing import SPIN, TAKEOVER, Bell, Cond, Peer, admitted, attach_data, detach_data
from ._protocol import (
    BAD_FRAME, DEFAULT_QUEUE_LIMIT, POST, SEND, WM_COPYDATA, Message, SenderCore, WindowCore, check_msg, check_param,
    encode_reply, encode_request, missing_window,
)

Handler = Callable[[Message], Any]
#: copy_data bigger than this goes through shared memory when the window is local.
SHM_THRESHOLD = 256 * 1024
_seg_counter = itertools.count()


class Window:
    """A named message endpoint with a bounded queue (``Window("editor")``).

    Local connections are read by the thread that pumps, while it pumps (a
    short spin over them, then one ``interproc.wait``): a send costs no
    thread hand-off.  While nobody pumps (or a handler runs long) a
    background thread reads them, so posts are queued and answered and sends
    wait in the queue.  ``_io`` says which of the two reads.
    """

    def __init__(self, name: str, *, max_queue: int = DEFAULT_QUEUE_LIMIT, scope: Scope = "user",
                 host: str | None = None, authkey: bytes | None = None, **listen_options: Any) -> None:
        self.name = name
        self.scope: Scope = scope
        self._handlers: dict[int, Handler] = {}
        self._bell = Bell()
        self._cond = Cond(self._bell)
        self._core = WindowCore(max_queue=max_queue, now=time.monotonic())
        self._peers: set[Peer] = set()
        self._local: list[Peer] = []  # read by whoever holds _io
        self._io = threading.RLock()
        self._pumping = 0  # threads inside pump()/run()
        self._dispatching: float | None = None  # since when a handler runs (None: none does)
        self._closed = False
        self._acking = 0  # replies computed but not yet sent (close() lets them go out first)
        self._quit = False
        #: senders dropped because a frame of theirs did not parse
        self.protocol_errors = 0
        mode = 0o600 if scope == "user" else listen_options.pop("mode", 0o660)
        try:
            self._listeners = [interproc.listen(f"unix://{window_path(name, scope)}", mode=mode)]
        except BaseException:
            self._bell.close()
            raise
        self._nats: Any = None  # host="nats://...": a subject on the broker (._nats)
        if host is not None and host.lower().startswith(("nats://", "tls://")):
            from ._nats import NatsPort

            try:
                self._nats = NatsPort(self, host, **listen_options)
            except BaseException:
                self._listeners[0].close()
                self._bell.close()
                raise
        elif host is not None:
            self._listeners.append(interproc.listen(host, authkey=authkey, **listen_options))
        self.address = host if self._nats is not None else self._listeners[-1].address
        self._background = threading.Thread(target=self._read_idle, name=f"interproc window {name}", daemon=True)
        self._background.start()
        # local senders join _local; a network sender's reader runs in a thread of its own
        self._serving = [interproc.serve(self._listeners[0], self._adopt_peer)]
        self._serving += [interproc.serve(lst, self._serve_peer) for lst in self._listeners[1:]]

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
        self._enter_pump()
        try:
            return self._pump(None if timeout is None else time.monotonic() + timeout)
        finally:
            self._leave_pump()

    def run(self) -> None:
        """The message loop: dispatch messages until ``quit()`` or ``close()``."""
        self._quit = False
        if self._closed:
            return
        self._enter_pump()
        try:
            while not self._quit and not self._closed:
                self._pump(None)
        finally:
            self._leave_pump()

    def quit(self) -> None:
        """Make ``run()`` return (PostQuitMessage); safe from any thread or handler."""
        with self._cond:
            self._quit = True
            self._cond.notify_all()

    def _enter_pump(self) -> None:
        with self._cond:
            self._pumping += 1
        self._take_io()

    def _leave_pump(self) -> None:
        self._io.release()
        with self._cond:
            self._pumping -= 1
            self._cond.notify_quiet()  # the background thread reads again

    def _take_io(self) -> None:
        if not self._io.acquire(False):
            self._bell.ring()  # the background thread is in its wait: let it go
            self._io.acquire()

    def _pump(self, deadline: float | None) -> int:
        """pump() with ``_io`` held: read the connections until something is queued, then dispatch."""
        with self._cond:
            self._core.pump_state(True, time.monotonic())
        try:
            first = True
            while not len(self._core) and not self._quit and not self._closed:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    if not first:
                        break
                    left = 0.0  # pump(timeout=0) still takes what has arrived on the connections
                first = False
                self._poll(0.5 if left is None else min(left, 0.5), spin=left != 0)  # slices keep Ctrl-C prompt
        finally:
            with self._cond:
                self._core.pump_state(False, time.monotonic())
        done = 0
        while True:
            with self._cond:
                m = self._core.pop()
                self._core.pump_state(False, time.monotonic())
            if m is None:
                return done
            # While the handler runs, a long one lets the background thread read.
            self._dispatching = time.monotonic()
            self._io.release()
            try:
                self._dispatch(m)
            finally:
                self._dispatching = None
                self._take_io()
            done += 1

    def _dispatch(self, m: Message) -> None:
        seg = None
        result: Any = 0
        error: BaseException | None = None
        try:
            seg = attach_data(m, self.scope)
            fn = self._handlers.get(m.msg)
            if fn is not None:  # unhandled: 0, as DefWindowProc answers
                result = fn(m)
        except Exception as exc:
            error = exc
        finally:
            detach_data(m, seg)
        reply = WindowCore.finish(m, result, error)
        if reply is not None:
            try:
                m.conn.send(reply)
            except (InterprocError, OSError):
                pass  # the sender gave up or died; nobody is waiting

    # -- connections ----------------------------------------------------
    def _poll(self, timeout: float, spin: bool) -> None:
        """With ``_io`` held: read what the local connections have, waiting up to ``timeout``."""
        peers = list(self._local)
        try:
            ready: list[Any] = []
            if spin:  # cheaper than a kernel sleep and wake-up when the next message is close
                end = time.perf_counter() + SPIN
                while not ready and time.perf_counter() < end and not len(self._core) and not self._quit:
                    ready = [p.ch for p in peers if p.ch.ready()]
                    os.sched_yield()  # a sender on this CPU runs meanwhile (else the spin only delays it)
            if not ready:
                ready = interproc.wait([*(p.ch for p in peers), self._bell], timeout)
        except (InterprocError, OSError, ValueError):
            return  # closed meanwhile
        by_ch = {id(p.ch): p for p in peers}
        for obj in ready:
            if obj is self._bell:
                self._bell.drain()
            else:
                self._service(by_ch[id(obj)])

    def _read_idle(self) -> None:
        """The background thread: reads the local connections while nobody pumps (or a handler runs long)."""
        while True:
            with self._cond:
                while not self._closed and self._pumping and (
                        self._dispatching is None or time.monotonic() - self._dispatching < TAKEOVER):
                    self._cond.wait(TAKEOVER)
                if self._closed:
                    return
            if not self._io.acquire(timeout=TAKEOVER):
                continue
            try:
                if self._closed:
                    return
                if self._pumping and self._dispatching is None:
                    continue  # the pump wants its connections back
                self._poll(0.5 if not self._pumping else TAKEOVER, spin=False)
            finally:
                self._io.release()

    def _adopt_peer(self, ch: Any) -> None:
        if not admitted(ch, self.scope):
            return  # another user's process: not reachable in the user scope (serve closes ch)
        peer = Peer(ch)
        with self._cond:
            if self._closed:
                return
            self._peers.add(peer)
            self._local.append(peer)
        self._bell.ring()  # the reading thread waits on the new connection too
        peer.gone.wait()  # serve closes ch once this returns

    def _service(self, peer: Peer) -> None:
        """One frame from a local connection that is ready (``_io`` held)."""
        try:
            frame = peer.ch.recv(timeout=1.0)  # ready: the frame is there or coming (bounded for a stalled peer)
            self._take_frame(peer, frame)
        except ProtocolError as exc:
            self._bad_frame(peer, exc)
            self._drop(peer)
        except Exception:
            self._drop(peer)  # the sender closed or died

    def _take_frame(self, peer: Peer, frame: bytes) -> None:
        with self._cond:
            reply = self._core.receive(peer, frame, peer.pid, peer.uid, time.monotonic())
            if reply is not None:
                self._acking += 1
            # No notify: the reading thread (or the pump's bell) finds the queue; waking the
            # background thread on every frame would cost a thread switch and the GIL.
        if reply is not None:
            # A posted message is queued (and may be dispatched, even close the
            # window) before its "queued" answer goes out: close() waits for it.
            try:
                peer.send(reply)
            finally:
                with self._cond:
                    self._acking -= 1
                    if self._closed:
                        self._cond.notify_quiet()  # close() waits for the last answers

    def _deliver(self, reply_to: Any, frame: bytes) -> bytes | None:
        """A frame from the NATS port (._nats): queued, or answered at once (None: nothing to say)."""
        with self._cond:
            if self._closed:
                return None
            answer = self._core.receive(reply_to, frame, 0, -1, time.monotonic())
            self._cond.notify_all()
            return answer

    def _bad_frame(self, peer: Peer, exc: ProtocolError) -> None:
        self.protocol_errors += 1  # garbage from this sender: tell it why, then drop it only
        try:
            peer.send(encode_reply(0, BAD_FRAME, {"message": str(exc)}))
        except Exception:
            pass

    def _drop(self, peer: Peer) -> None:
        with self._cond:
            self._core.drop_connection(peer)
            self._peers.discard(peer)
            if peer in self._local:
                self._local.remove(peer)
        peer.ch.close()
        peer.gone.set()

    def _serve_peer(self, ch: Any) -> None:
        """A network sender: its own reader thread (off the local fast path)."""
        if not admitted(ch, self.scope):
            return
        peer = Peer(ch)
        with self._cond:
            if self._closed:
                return
            self._peers.add(peer)
        try:
            while True:
                self._take_frame(peer, peer.ch.recv())
                self._bell.ring()  # the pump may sleep on the local connections
        except ProtocolError as exc:
            self._bad_frame(peer, exc)
        except Exception:
            pass  # the sender closed or died
        finally:
            self._drop(peer)

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
        for peer in peers:
            peer.ch.close()
            peer.gone.set()
        for srv in self._serving:
            srv.close(timeout=2)  # closes the listener; readers end with their channels
        if threading.current_thread() is not self._background:
            self._background.join(timeout=2)
        if not self._background.is_alive():
            self._bell.close()

    def __enter__(self) -> "Window":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()


# -- senders --------------------------------------------------------------------

# What the blocking senders and the asyncio ones (``_aio.py``) share: everything but the I/O.

def check_call(msg: int, wparam: int, lparam: int) -> None:
    check_msg(msg)
    check_param(wparam, "wparam")
    check_param(lparam, "lparam")


def connect_args(name: str, host: str | None, authkey: bytes | None, scope: Scope,
                 timeout: float | None) -> tuple[str, float | None, dict[str, Any]]:
    """(address, connect timeout, options) of a window: a local one is there or not (no wait)."""
    address = host if host is not None else f"unix://{window_path(name, scope)}"
    return address, timeout if host else None, ({"authkey": authkey} if authkey is not None else {})


def check_owner(ch: Any, name: str, scope: Scope) -> None:
    """Another user's window is invisible in the user scope: close and say it is not there."""
    creds = getattr(ch, "peer_credentials", None)
    if creds is not None and scope == "user" and creds.uid != os.getuid():
        ch.close()
        raise missing_window(name)


def stage_copydata(data: Any, local: bool, scope: Scope) -> tuple[SharedMemory | None, Any, tuple[str, int] | None]:
    """A large local WM_COPYDATA goes through a segment that lives for the call: (segment, data, shm)."""
    if data is None or not local or len(memoryview(data).cast("B")) <= SHM_THRESHOLD:
        return None, data, None
    view = memoryview(data).cast("B")
    seg = SharedMemory.create(f"msgcd.{os.getpid()}.{next(_seg_counter)}.{os.urandom(4).hex()}",
                              len(view), scope=scope)
    seg.buf[: len(view)] = view
    return seg, None, (seg.name, len(view))


def time_left(deadline: float | None, name: str) -> float | None:
    """Seconds left for a reply, or ``Timeout`` (with the hint every sender gives)."""
    left = None if deadline is None else deadline - time.monotonic()
    if left is not None and left <= 0:
        raise not_answered(name)
    return left


def not_answered(name: str) -> Timeout:
    return Timeout(f"window {name!r} did not answer within the timeout (is it pumping messages?)")


class _Link:
    """A sender's connection to one window, reused by later calls."""

    def __init__(self, ch: Any, local: bool) -> None:
        self.ch = ch
        self.local = local
        self.lock = threading.Lock()
        self.core = SenderCore()


_links: dict[tuple, _Link] = {}
_links_lock = threading.Lock()


def _open_link(name: str, host: str | None, authkey: bytes | None, scope: Scope, timeout: float | None) -> _Link:
    address, wait, options = connect_args(name, host, authkey, scope, timeout)
    try:
        ch = interproc.connect(address, timeout=wait, **options)
    except (NotFound, ChannelClosed):  # nobody listens, or its owner is dying
        raise missing_window(name) from None
    check_owner(ch, name, scope)
    return _Link(ch, host is None)


def _call(name: str, kind: int, msg: int, wparam: int, lparam: int, *, data: Any = None, timeout: float | None,
          abort_if_hung: bool = False, host: str | None = None, authkey: bytes | None = None,
          scope: Scope = "user") -> Any:
    check_call(msg, wparam, lparam)
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
            seg, data, shm = stage_copydata(data, link.local, scope)
            frame = encode_request(kind, req_id, msg, wparam, lparam, data=data, shm=shm, abort_if_hung=abort_if_hung)
            link.ch.send(b"".join(frame))
            ready = getattr(link.ch, "ready", None)
            if ready is not None:  # a local window often answers within the spin
                end = time.perf_counter() + SPIN
                while not ready() and time.perf_counter() < end:
                    os.sched_yield()  # the window's process, if it waits for this CPU, runs meanwhile
            while True:
                left = time_left(deadline, name)
                try:
                    reply = link.ch.recv(timeout=left)
                except Timeout:
                    raise not_answered(name) from None
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
