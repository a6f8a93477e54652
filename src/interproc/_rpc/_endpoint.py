"""The blocking driver: one :class:`Endpoint` per channel moves the protocol's bytes.

Threads share a connection leader/follower style: whichever thread needs a
message next (a caller waiting for its reply, or a serving thread) takes the
*reader* role and receives; replies for other callers are handed to them.
A thread that receives a call runs it at once, still holding the reader
role, so a quick call costs no thread hand-off at all.  If the call is still
running a millisecond or two later, a process-wide promoter thread passes the
role to an idle thread (or starts one, up to ``workers`` per connection), so
a slow method never holds up the replies and calls behind it — replies leave
out of order.  One caller alone on a connection likewise sends and receives
on its own thread.  (Handing the role over before every call, the textbook
leader/follower, halved the small-call rate here: a wake-up and a GIL
hand-off per call.)

The channel is any interproc Channel (``send(bytes)``, ``recv(timeout=)``);
a peer that dies makes ``recv`` raise ``ChannelClosed``, and every waiting
caller gets it at once.
"""

from __future__ import annotations

import threading
import time
from threading import get_ident as _get_ident
from time import monotonic as _monotonic
import traceback
from typing import Any, Callable

from .._errors import ChannelClosed, HandleClosed, ProtocolError, RemoteError, Timeout
from ._dispatch import Exposed
from ._protocol import INTERNAL_ERROR, METHOD_NOT_FOUND, Call, Failure, Fault, Protocol, Result, Send

_UNSET: Any = object()
RECV_SPIN = 50e-6  # seconds a caller's socket recv polls before it sleeps (see StreamEnd.recv_spin)


class Pending:
    """A call in flight: ``result(timeout=)``, ``done()``, ``cancel()``."""

    __slots__ = ("_ep", "id", "method", "_value", "_error", "_done")

    def __init__(self, ep: Endpoint, rid: Any, method: str) -> None:
        self._ep, self.id, self.method = ep, rid, method
        self._value: Any = None
        self._error: BaseException | None = None
        self._done = False

    def done(self) -> bool:
        return self._done

    def _fail(self, error: BaseException) -> None:
        if not self._done:
            self._error = error
            self._done = True

    def result(self, timeout: float | None = _UNSET) -> Any:
        """The call's result; ``RemoteError`` if it raised remotely; ``Timeout`` (the call
        is then cancelled: its late reply is discarded); ``ChannelClosed`` if the peer died."""
        if not self._done:
            self._ep._wait(self, self._ep.timeout if timeout is _UNSET else timeout)
        if self._error is not None:
            raise self._error
        return self._value

    def cancel(self) -> bool:
        """Stop waiting: the reply, if it comes, is discarded.  False if already done."""
        if self._done:
            return False
        self._ep._cancel(self, HandleClosed(f"call {self.method}() was cancelled"))
        return True

    def __repr__(self) -> str:
        state = "done" if self.done() else "pending"
        return f"<Pending {self.method}() id={self.id} {state}>"


class Endpoint:
    """Calls out, and (with ``exposed``) calls in, over one channel."""

    def __init__(self, channel: Any, *, exposed: Exposed | None = None, protocol: Protocol | None = None,
                 timeout: float | None = None, workers: int = 16, on_close: Callable[[], None] | None = None,
                 tracebacks: bool = True) -> None:
        self.channel = channel
        self.proto = protocol or Protocol()
        self.exposed = exposed
        self.timeout = timeout
        self.workers = max(0, workers)
        self.tracebacks = tracebacks  # send the remote traceback text with an error
        # Two locks, never held together: protocol state (no I/O under it), and the
        # channel's send side.  A sender blocked on a full channel must never stop
        # the reader from handling replies, or two busy peers could deadlock.
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        # The condition's own lock, taken directly (``with self._held``) where no
        # wait or notify follows: a C-level lock costs less than Condition.__enter__.
        self._held = threading.Lock()
        self._cond = threading.Condition(self._held)
        self._owner: int | None = None
        self._idle = 0  # serving threads waiting for the reader role
        self._sleepers = 0  # threads in cond.wait (idle ones and callers waiting for replies)
        self._threads = 0
        self._waiting: dict[Any, Pending] = {}
        self._closed: BaseException | None = None
        self._on_close = on_close
        self._inline_tick = 0
        if exposed is None and hasattr(channel, "recv_spin"):
            # A caller's reply often comes sooner than a sleeping thread is woken
            # (~40 us on a small VM): poll for it a little first (socket streams
            # only; the channel backs off when the spin keeps finding nothing).
            # Not on the serving side: measured, spinning for the next call there
            # cost more CPU than it saved on a busy 2-CPU machine.
            channel.recv_spin = RECV_SPIN

    # -- sending ------------------------------------------------------------------
    def _send(self, data: bytes) -> None:
        try:
            with self._send_lock:
                self.channel.send(data)
        except (ChannelClosed, HandleClosed, OSError) as exc:
            self._fail_all(exc if isinstance(exc, (ChannelClosed, HandleClosed)) else ChannelClosed(f"send failed: {exc}"))
            raise self._closed from exc  # type: ignore[misc]

    def _check_open(self) -> None:
        if self._closed is not None:
            raise type(self._closed)(str(self._closed))  # a fresh one: no stacked tracebacks

    def submit(self, method: str, args: Any = (), kwargs: dict[str, Any] | None = None) -> Pending:
        with self._lock:
            self._check_open()
            rid, data = self.proto.request(method, args, kwargs)
            fut = self._waiting[rid] = Pending(self, rid, method)
        self._send(data)
        return fut

    def call(self, method: str, args: Any = (), kwargs: dict[str, Any] | None = None,
             timeout: float | None = _UNSET) -> Any:
        if timeout is _UNSET:
            timeout = self.timeout
        # The fast path, for a caller alone on the connection: send, then take
        # the free reader role and read our own reply on this thread (no wake-up
        # of another thread, no condition wait).  The role is taken only after
        # the send: a reader blocked on a full channel could deadlock with a
        # peer blocked sending us its replies.  A nested call (a callback calling
        # back: we already read) or a busy connection takes the general path.
        fut = self.submit(method, args, kwargs)
        me = _get_ident()
        with self._held:
            fast = self._owner is None and not fut._done
            if fast:
                self._owner = me
        if not fast:
            return fut.result(timeout)
        try:
            deadline = None if timeout is None else _monotonic() + timeout
            proto, lock = self.proto, self._lock
            while not fut._done and self._owner == me:
                if deadline is None:
                    left = None
                else:
                    left = deadline - _monotonic()
                    if left <= 0:
                        self._cancel(fut, Timeout(f"call {method}() timed out after {timeout} s"))
                        break
                data = self._recv(left)
                if data is None:
                    continue
                with lock:
                    got = proto.plain_result(data)
                if got is None:  # anything else (a call from the peer, an error...): the general way
                    if not self._handle(data):
                        break
                    continue
                rid, value = got
                other = self._waiting.pop(rid, None)
                if other is not None and not other._done:
                    other._value = value
                    other._done = True
                    if other is not fut and self._sleepers:
                        with self._cond:
                            self._cond.notify_all()
        finally:
            self._release_reader(me)
        if not fut._done:  # the role went to a thread that runs calls: wait like anyone else
            left = None if deadline is None else max(0.0, deadline - _monotonic())
            self._wait(fut, left)
        if fut._error is not None:
            raise fut._error
        return fut._value

    def notify(self, method: str, args: Any = (), kwargs: dict[str, Any] | None = None) -> None:
        with self._lock:
            self._check_open()
            data = self.proto.notification(method, args, kwargs)
        self._send(data)

    def batch(self, calls: list[tuple[str, Any, dict[str, Any] | None, bool]]) -> list[Pending | None]:
        with self._lock:
            self._check_open()
            ids, data = self.proto.batch(calls)
            futs = [None if rid is None else Pending(self, rid, c[0]) for rid, c in zip(ids, calls)]
            for f in futs:
                if f is not None:
                    self._waiting[f.id] = f
        self._send(data)
        return futs

    def hello(self, timeout: float | None) -> str:
        """Agree on a codec with the peer (one round trip)."""
        with self._lock:
            rid, data = self.proto.hello()
            fut = self._waiting[rid] = Pending(self, rid, "rpc.hello")
        self._send(data)
        fut.result(timeout)
        return self.proto.codec

    # -- waiting: leader / follower --------------------------------------------------
    # ``_owner`` is the thread holding the reader role (None: free).  Only the
    # owner calls channel.recv; the promoter may take the role from an owner
    # that is running a call inline, and the owner then finds it gone.
    def _wait(self, fut: Pending, timeout: float | None) -> None:
        deadline = None if timeout is None else _monotonic() + timeout
        cond = self._cond
        me = _get_ident()
        if self._owner == me:
            # A call made from inside a call this thread runs inline (a callback
            # calling back): it already holds the role, so it reads for itself.
            with cond:
                nested = self._owner == me
                if nested:
                    _PROMOTER.busy.discard(self)  # reading, not running: nothing to promote
            if nested:
                try:
                    while not fut._done and self._owner == me:
                        if not self._read_some(fut, deadline, timeout):
                            return
                finally:
                    if self._owner == me:  # back to the outer call, which runs on
                        self._inline_tick = _PROMOTER.tick
                        _PROMOTER.watch(self)
                if fut._done:
                    return
        while True:
            with cond:
                if self._owner is not None and not fut._done:
                    self._sleepers += 1
                    try:
                        while not fut._done and self._owner is not None:
                            if deadline is None:
                                cond.wait()
                                continue
                            left = deadline - _monotonic()
                            if left <= 0:
                                break
                            cond.wait(left)
                    finally:
                        self._sleepers -= 1
                if fut._done:
                    return
                timed_out = self._owner is not None  # still someone else's turn: the deadline passed
                if not timed_out:
                    self._owner = me
            if timed_out:
                self._cancel(fut, Timeout(f"call {fut.method}() timed out after {timeout} s"))
                return
            try:
                while not fut._done and self._owner == me:
                    if not self._read_some(fut, deadline, timeout):
                        return
            finally:
                self._release_reader(me)
            if fut._done:
                return

    def _read_some(self, fut: Pending, deadline: float | None, timeout: float | None) -> bool:
        """One message as the owner; False (and the call cancelled) at its deadline."""
        if deadline is None:
            left = None
        else:
            left = deadline - _monotonic()
            if left <= 0:
                self._cancel(fut, Timeout(f"call {fut.method}() timed out after {timeout} s"))
                return False
        self._read_one(left)
        return True

    def _release_reader(self, me: int) -> None:
        with self._held:
            if self._owner == me:
                self._owner = None
                if self._sleepers:
                    self._cond.notify_all()

    def _read_one(self, timeout: float | None) -> bool:
        """Receive and handle one message as the reader.  False when the role was taken
        away while calls ran on this thread."""
        data = self._recv(timeout)
        return True if data is None else self._handle(data)

    def _recv(self, timeout: float | None) -> bytes | None:
        """One message as the reader (None: the timeout passed)."""
        try:
            return self.channel.recv(timeout=timeout)  # type: ignore[no-any-return]
        except Timeout:
            return None
        except (ChannelClosed, HandleClosed, OSError) as exc:
            self._fail_all(exc if isinstance(exc, ChannelClosed) else ChannelClosed(f"{exc}"))
            raise self._closed from None  # type: ignore[misc]
        except ProtocolError as exc:  # a broken frame: the stream cannot be trusted any more
            self._fail_all(ChannelClosed(f"the peer broke the framing: {exc}"))
            self.close()
            raise
        except Exception as exc:
            # close() from another thread tore the handle down under this recv; some
            # transports then fail with whatever their dropped handle raises.
            if self._closed is not None:
                raise type(self._closed)(str(self._closed)) from exc
            raise

    def _handle(self, data: bytes) -> bool:
        """Handle one message as the reader (False: the role was taken away meanwhile)."""
        with self._lock:
            events = self.proto.receive(data)
        first = events[0] if len(events) == 1 else None
        kind = type(first)
        if kind is Result:  # the common case: one reply
            fut = self._waiting.pop(first.id, None)  # type: ignore[union-attr]
            if fut is not None and not fut._done:
                fut._value = first.value  # type: ignore[union-attr]
                fut._done = True
            if self._sleepers:
                with self._cond:
                    self._cond.notify_all()
            return True
        if kind is Call and self.workers:  # the common case on the answering side: one call
            return self._run_inline(first)  # type: ignore[arg-type]
        calls: list[Call] = []
        for ev in events:
            if type(ev) is Result:
                fut = self._waiting.pop(ev.id, None)
                if fut is not None and not fut._done:
                    fut._value = ev.value
                    fut._done = True
            elif type(ev) is Failure:
                fut = self._waiting.pop(ev.id, None) if ev.id is not None else None
                if fut is not None:
                    fut._fail(ev.error)
            elif type(ev) is Send:
                self._send(ev.data)
            else:
                calls.append(ev)  # type: ignore[arg-type]
        if self._sleepers and len(events) > len(calls):
            with self._cond:
                self._cond.notify_all()  # someone's reply may have come
        if not calls:
            return True
        if self.workers == 0:
            for call in calls:
                self._run(call)
            return True
        return self._run_inline(*calls)

    def _run_inline(self, *calls: Call) -> bool:
        """Run calls right here, still holding the reader role: no thread hand-off
        for the common quick call.  If they last longer than a tick of the promoter
        (about a millisecond), it passes the role on; False then."""
        me = _get_ident()
        promoter = _PROMOTER
        self._inline_tick = promoter.tick
        promoter.busy.add(self)
        if promoter.sleeping:  # read after the add: the promoter sets it, then looks at busy
            promoter.watch(self)
        try:
            for call in calls:
                self._run(call)
        finally:
            with self._held:
                promoter.busy.discard(self)
                still = self._owner == me
        return still

    def _promote(self) -> None:
        """(Promoter thread) a call runs long: let another thread take the reader role."""
        with self._cond:
            if self._owner is None or self._closed is not None or self not in _PROMOTER.busy:
                return
            _PROMOTER.busy.discard(self)
            self._owner = None
            if self._idle:
                self._cond.notify_all()  # the idle threads compete; callers waiting may take it too
            elif self._threads < self.workers:
                self._threads += 1
                threading.Thread(target=self._serve_thread, name="interproc-rpc", daemon=True).start()
            elif self._sleepers:
                self._cond.notify_all()

    # -- answering calls ---------------------------------------------------------------
    def _run(self, call: Call) -> None:
        try:
            if self.exposed is None:
                raise Fault(METHOD_NOT_FOUND, "this end exposes no object")
            entry = self.exposed.resolve(call.method, call.args, call.kwargs)
            value = entry.fn(*call.args, **call.kwargs)
            if entry.is_async:  # a coroutine method served by the blocking driver
                import asyncio

                value = asyncio.run(value)
        except Fault as exc:
            with self._lock:
                data = self.proto.fail(call, exc)
        except Exception as exc:  # a bug in the method never stops the server
            tb = traceback.format_exc() if self.tracebacks else ""
            with self._lock:
                data = self.proto.fail(call, exc, tb)
        else:
            with self._lock:
                data = self.proto.reply(call, value)
        if data is not None:
            try:
                self._send(data)
            except (ChannelClosed, HandleClosed):
                pass  # the caller went away (or we closed): nobody to tell

    def _serve_thread(self) -> None:
        try:
            self.serve()
        except (ChannelClosed, HandleClosed, ProtocolError):
            pass
        finally:
            with self._cond:
                self._threads -= 1

    def serve(self) -> None:
        """Answer calls until the peer closes (then ``ChannelClosed``) or ``close()``."""
        cond = self._cond
        me = _get_ident()
        while True:
            with cond:
                while self._owner is not None and self._closed is None:
                    self._idle += 1
                    self._sleepers += 1
                    try:
                        cond.wait()
                    finally:
                        self._idle -= 1
                        self._sleepers -= 1
                if self._closed is not None:
                    raise self._closed
                self._owner = me
            try:
                while self._read_one(None):
                    pass
            finally:
                self._release_reader(me)

    # -- ending ----------------------------------------------------------------------
    def _cancel(self, fut: Pending, error: BaseException) -> None:
        with self._lock:
            self.proto.cancel(fut.id)
            self._waiting.pop(fut.id, None)
        fut._fail(error)

    def _fail_all(self, error: BaseException) -> None:
        with self._cond:
            if self._closed is None:
                self._closed = error
            waiting, self._waiting = self._waiting, {}
            self.proto.abandon()
            for fut in waiting.values():
                lost = HandleClosed if isinstance(error, HandleClosed) else ChannelClosed
                fut._fail(lost(f"call {fut.method}() lost: {error}"))
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed is not None

    def close(self) -> None:
        self._fail_all(HandleClosed("the RPC connection was closed"))
        try:
            self.channel.close()
        except Exception:
            pass
        if self._on_close is not None:
            self._on_close()


class _Promoter:
    """One thread per process that hands the reader role on when a call runs long.

    It ticks every millisecond while calls are running inline (and for a while
    after, so a steady stream of calls never has to wake it), and sleeps on an
    event otherwise.  A call seen running across two ticks gets its endpoint's
    reader role passed to another thread, so later messages are read (and
    answered) while it goes on.
    """

    PERIOD = 0.001
    LINGER = 50  # ticks without a running call before sleeping

    def __init__(self) -> None:
        self.tick = 0
        self.busy: set[Endpoint] = set()
        self.sleeping = True
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def watch(self, ep: Endpoint) -> None:
        self.busy.add(ep)
        if self.sleeping:
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, name="interproc-rpc-promoter", daemon=True)
                    self.sleeping = False
                    self._thread.start()
                    return
            self._wake.set()

    def _run(self) -> None:
        quiet = 0
        while True:
            if not self.busy:
                quiet += 1
                if quiet > self.LINGER:
                    self.sleeping = True
                    if not self.busy:  # checked after the flag: watch() adds, then reads the flag
                        self._wake.wait()
                    self._wake.clear()
                    self.sleeping = False
                    quiet = 0
            else:
                quiet = 0
            time.sleep(self.PERIOD)
            self.tick += 1
            for ep in list(self.busy):
                if self.tick - ep._inline_tick >= 2:
                    ep._promote()


_PROMOTER = _Promoter()


def describe(exc: BaseException) -> str:
    if isinstance(exc, RemoteError):
        return f"{exc.remote_type}: {exc.message}"
    if isinstance(exc, ProtocolError):
        return f"protocol error: {exc}"
    return f"{type(exc).__name__}: {exc}"


__all__ = ["Endpoint", "Pending", "INTERNAL_ERROR"]
