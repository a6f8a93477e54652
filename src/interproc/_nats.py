"""NATS as a transport: one shared connection per server per process, for blocking callers.

nats-py is asyncio-only.  Blocking interproc code gets it through one private
event loop running in a daemon thread (:func:`loop_thread`); every
connection of the process lives on that loop, and blocking calls hand it
coroutines with ``run(coro, timeout)``.  Connections are shared per
(server, credentials) -- a mailslot, its writers and an RPC proxy in one
process ride one TCP connection, as NATS intends.

Addresses: ``nats://[user:password@]HOST:PORT[/path]`` (``tls://`` for TLS
from the first byte; or ``tls=SSLContext``).  ``token=``, ``nkeys_seed=``
(a seed file) and ``nkeys_seed_str=`` pass through to nats-py.  Subjects are
``interproc.<kind>.<name>``, the name validated as any interproc name and
its dots escaped, so a user's name can never add subject tokens or
wildcards.

Reconnection: the client retries forever (every ``RECONNECT_WAIT`` s) and
re-subscribes on its own; what is published while the server is away is
buffered (up to ``pending_size``) and sent on reconnect.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import ssl
import threading
import time
import urllib.parse
from collections import deque
from typing import Any, Awaitable, Callable, TypeVar

from ._errors import ChannelClosed, MessageTooLarge, NotFound, PermissionDenied, Timeout
from ._naming import validate_name

T = TypeVar("T")
SCHEMES = ("nats", "tls")
SUBJECT_PREFIX = "interproc"
RECONNECT_WAIT = 0.25
OUT_LIMIT = 8 << 20  # bytes a writer may have queued before write() waits
_INSTALL = "NATS support needs nats-py: pip install 'interproc[nats]'"


def is_nats(address: object) -> bool:
    return isinstance(address, str) and address.lower().startswith(("nats://", "tls://"))


def require() -> Any:
    """The ``nats`` package, or ImportError naming the extra."""
    try:
        import nats
    except ImportError as exc:
        raise ImportError(_INSTALL) from exc
    return nats


def subject(kind: str, name: str) -> str:
    """``interproc.<kind>.<name>`` with ``name`` validated and its dots escaped (never a wildcard)."""
    validate_name(name)  # letters, digits, '.', '_', '-' only: no spaces, '*' or '>'
    return f"{SUBJECT_PREFIX}.{kind}.{name.replace('.', '%2E')}"


def split(address: str) -> tuple[str, str]:
    """``nats://u:p@h:port/path`` -> (server URL, path without the slash)."""
    parts = urllib.parse.urlsplit(address)
    if parts.scheme.lower() not in SCHEMES or not parts.hostname:
        raise ValueError(f"not a NATS address: {address!r} (expected nats://HOST:PORT[/name])")
    if parts.query or parts.fragment:
        raise ValueError(f"NATS address {address!r}: no query or fragment is taken; pass options as keywords")
    server = urllib.parse.urlunsplit((parts.scheme.lower(), parts.netloc, "", "", ""))
    return server, parts.path.lstrip("/")


def redact(server: str) -> str:
    """The URL without its password, for messages."""
    parts = urllib.parse.urlsplit(server)
    if parts.password is None:
        return server
    host = parts.netloc.rsplit("@", 1)[1]
    return f"{parts.scheme}://{parts.username}:***@{host}"


# -- the private loop ------------------------------------------------------------
class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="interproc-nats", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Awaitable[T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]

    def run(self, coro: Awaitable[T], timeout: float | None, what: str) -> T:
        """Run ``coro`` on the loop and wait for it (``Timeout`` after ``timeout`` s; Ctrl-C cancels)."""
        if threading.current_thread() is self.thread:
            raise RuntimeError("blocking NATS call made on the NATS loop thread")
        fut = self.submit(coro)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise Timeout(f"{what}: no answer within {timeout} s") from None
        except BaseException:
            fut.cancel()
            raise


_loop_lock = threading.Lock()
_loop: _LoopThread | None = None


def loop_thread() -> _LoopThread:
    global _loop
    with _loop_lock:
        if _loop is None or not _loop.thread.is_alive():
            _loop = _LoopThread()
        return _loop


def _after_fork() -> None:
    # The loop thread does not exist in a forked child: start afresh there.
    global _loop, _connections, _loop_lock, _conn_lock
    _loop, _connections = None, {}
    _loop_lock, _conn_lock = threading.Lock(), threading.Lock()


# -- shared connections ------------------------------------------------------------
class Connection:
    """One nats-py client, shared by everything of this process that uses its server."""

    def __init__(self, server: str, nc: Any) -> None:
        self.server = server
        self.nc = nc
        self.what = f"NATS server {redact(server)}"
        self._listeners: list[Any] = []
        self._reconnect_listeners: list[Any] = []
        # Outgoing messages of blocking writers, in order; one pump task on the loop
        # publishes them (a write costs one wake-up of the loop, and bursts batch up).
        self._out_cond = threading.Condition()
        self._out: list[tuple[str, bytes, str]] = []
        self._out_bytes = 0
        self._pumping = False
        self._out_error: BaseException | None = None

    def add_disconnect_listener(self, fn: Any) -> None:
        """``fn()`` runs (on the loop thread) each time the connection drops."""
        self._listeners.append(fn)

    def remove_disconnect_listener(self, fn: Any) -> None:
        try:
            self._listeners.remove(fn)
        except ValueError:
            pass

    def disconnected(self) -> None:
        for fn in list(self._listeners):
            fn()

    def add_reconnect_listener(self, fn: Any) -> None:
        """``fn()`` runs (on the loop thread) each time the connection is back."""
        self._reconnect_listeners.append(fn)

    def remove_reconnect_listener(self, fn: Any) -> None:
        try:
            self._reconnect_listeners.remove(fn)
        except ValueError:
            pass

    def reconnected(self) -> None:
        for fn in list(self._reconnect_listeners):
            fn()

    @property
    def connected(self) -> bool:
        return bool(self.nc.is_connected)

    @property
    def max_payload(self) -> int:
        return int(self.nc.max_payload)

    def check_size(self, size: int) -> None:
        limit = self.max_payload
        if size > limit:
            raise MessageTooLarge(f"{self.what}: a {size}-byte message is over the server's max_payload ({limit})")

    async def publish(self, subj: str, data: bytes, reply: str = "") -> None:
        self.check_size(len(data))
        try:
            await self.nc.publish(subj, data, reply=reply)
        except Exception as exc:
            raise translate(exc, self.what) from exc

    def publish_nowait(self, subj: str, data: bytes, *, reply: str = "", timeout: float | None = None) -> None:
        """Hand ``data`` to the connection, in order with this process's other writes; returns
        at once unless ``OUT_LIMIT`` bytes are already waiting (then up to ``timeout``).
        An error of an earlier write (say the reconnect buffer overflowed) is raised here."""
        self.check_size(len(data))
        with self._out_cond:
            if self._out_error is not None:
                err, self._out_error = self._out_error, None
                raise err
            if self._out_bytes > OUT_LIMIT:
                deadline = None if timeout is None else time.monotonic() + timeout
                while self._out_bytes > OUT_LIMIT:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise Timeout(f"{self.what}: {self._out_bytes} bytes still wait to be sent")
                    self._out_cond.wait(0.25 if left is None else min(left, 0.25))
            self._out.append((subj, data, reply))
            self._out_bytes += len(data)
            start = not self._pumping
            self._pumping = True
        if start:
            loop = loop_thread().loop
            loop.call_soon_threadsafe(lambda: loop.create_task(self._pump()))

    async def _pump(self) -> None:
        while True:
            with self._out_cond:
                if not self._out:
                    self._pumping = False
                    self._out_cond.notify_all()
                    return
                batch, self._out = self._out, []
            for subj, data, reply in batch:
                try:
                    await self.nc.publish(subj, data, reply=reply)
                except Exception as exc:
                    self._out_error = translate(exc, self.what)
            with self._out_cond:
                self._out_bytes -= sum(len(d) for _, d, _ in batch)
                self._out_cond.notify_all()

    def flush(self, timeout: float | None = 5) -> None:
        """Wait until what was written is on its way to the server (``Timeout`` otherwise)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._out_cond:
            while self._pumping:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise Timeout(f"{self.what}: writes still waiting after {timeout} s")
                self._out_cond.wait(0.25 if left is None else min(left, 0.25))
        if self.nc.is_connected:
            left = 5.0 if deadline is None else max(0.1, deadline - time.monotonic())
            loop_thread().run(self.nc.flush(timeout=left), left + 1, f"{self.what}: flush")

    def publish_blocking(self, subj: str, data: bytes, *, reply: str = "", timeout: float | None = None,
                         flush: bool = True) -> None:
        async def go() -> None:
            await self.publish(subj, data, reply)
            if flush and self.nc.is_connected:
                # The bytes are on the wire (or buffered for the reconnect) when this returns.
                await self.nc.flush(timeout=timeout or 10)

        loop_thread().run(go(), timeout, f"{self.what}: publish to {subj}")


def pop_waiting(cond: threading.Condition, queue: "deque[bytes]", is_closed: Callable[[], bool],
                timeout: float | None, closed_message: str, timeout_message: str) -> bytes:
    """The next message of ``queue``, which a subscription callback fills under ``cond``:
    ``ChannelClosed`` once ``is_closed()`` and it is empty, ``Timeout`` after ``timeout``.
    The waits are bounded, so Ctrl-C is seen promptly."""
    deadline = None if timeout is None else time.monotonic() + timeout
    with cond:
        while not queue:
            if is_closed():
                raise ChannelClosed(closed_message)
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise Timeout(timeout_message)
            cond.wait(0.25 if left is None else min(left, 0.25))
        return queue.popleft()


def translate(exc: BaseException, what: str) -> BaseException:
    """A nats-py error as an interproc one."""
    from nats import errors

    if isinstance(exc, errors.MaxPayloadError):
        return MessageTooLarge(f"{what}: {exc}")
    if isinstance(exc, (errors.AuthorizationError,)):
        return PermissionDenied(f"{what}: authorization failed ({exc})")
    if isinstance(exc, errors.NoServersError):
        return NotFound(f"{what}: no server answered")
    if isinstance(exc, (errors.ConnectionClosedError, errors.ConnectionDrainingError)):
        return ChannelClosed(f"{what}: the connection is closed")
    if isinstance(exc, (errors.TimeoutError, asyncio.TimeoutError)):
        return Timeout(f"{what}: timed out")
    if isinstance(exc, errors.NoRespondersError):
        return NotFound(f"{what}: nobody serves that name")
    return exc


_conn_lock = threading.Lock()
_connections: dict[tuple[Any, ...], Connection] = {}


def connection(server: str, *, timeout: float | None = None, token: str | None = None,
               nkeys_seed: str | None = None, nkeys_seed_str: str | None = None,
               tls: ssl.SSLContext | None = None) -> Connection:
    """The process's connection to ``server`` with these credentials (made on first use)."""
    require()
    key = (server, token, nkeys_seed, nkeys_seed_str, id(tls) if tls is not None else None)
    with _conn_lock:
        conn = _connections.get(key)
        if conn is not None and not conn.nc.is_closed:
            return conn
        conn = _open(server, timeout, token=token, nkeys_seed=nkeys_seed, nkeys_seed_str=nkeys_seed_str, tls=tls)
        _connections[key] = conn
        return conn


def connected(server: str) -> bool:
    """Whether this process already has an open connection to ``server`` (so getting it never waits)."""
    with _conn_lock:
        return any(key[0] == server and not conn.nc.is_closed for key, conn in _connections.items())


async def wrap(coro: Awaitable[T], timeout: float | None, what: str) -> T:
    """Await ``coro`` run on the NATS loop from another event loop (``Timeout`` after ``timeout`` s
    and a grace second; cancelling the caller cancels it there too)."""
    fut = asyncio.wrap_future(loop_thread().submit(coro))
    try:
        return await asyncio.wait_for(fut, None if timeout is None else timeout + 1)
    except asyncio.TimeoutError:
        raise Timeout(f"{what}: no answer within {timeout} s") from None


def _open(server: str, timeout: float | None, **creds: Any) -> Connection:
    import nats

    what = f"NATS server {redact(server)}"
    parts = urllib.parse.urlsplit(server)
    opts: dict[str, Any] = {k: v for k, v in creds.items() if v is not None}
    if parts.password is not None:
        opts["user"] = urllib.parse.unquote(parts.username or "")
        opts["password"] = urllib.parse.unquote(parts.password)
        server = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[1]}"
    elif parts.username and "token" not in opts:
        opts["token"] = urllib.parse.unquote(parts.username)  # nats://TOKEN@host:port
        server = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[1]}"
    errors: list[BaseException] = []
    holder: list[Connection] = []

    async def on_disconnect() -> None:
        if holder:
            holder[0].disconnected()

    async def on_reconnect() -> None:
        if holder:
            holder[0].reconnected()

    async def on_error(exc: BaseException) -> None:
        errors.append(exc)

    async def go() -> Any:
        # One attempt at first (a refused or unauthorized connect is an error now, not a
        # retry loop); once connected, reconnect for ever.
        nc = await nats.connect(
            server, connect_timeout=max(1, int(timeout or 5)), allow_reconnect=True,
            max_reconnect_attempts=1, reconnect_time_wait=RECONNECT_WAIT, error_cb=on_error,
            disconnected_cb=on_disconnect, reconnected_cb=on_reconnect, name="interproc",
            # A silent dead link (cable out, host gone) is noticed within ~30 s, not nats-py's 4 min.
            ping_interval=10, max_outstanding_pings=3, **opts,
        )
        nc.options["max_reconnect_attempts"] = -1
        return nc

    try:
        nc = loop_thread().run(go(), None if timeout is None else timeout + 1, f"{what}: connect")
    except Timeout:
        raise Timeout(f"{what}: could not connect within {timeout} s") from None
    except Exception as exc:
        auth = next((e for e in errors if "authorization" in str(e).lower()), None)
        if auth is not None or "authorization" in str(exc).lower():
            raise PermissionDenied(f"{what}: authorization failed ({auth or exc})") from exc
        raise NotFound(f"{what}: cannot connect ({exc or type(exc).__name__})") from exc
    conn = Connection(server, nc)
    holder.append(conn)
    return conn


def flush_all(timeout: float = 5) -> None:
    """Send what this process's writers queued (at exit, so a writer that exits loses nothing)."""
    with _conn_lock:
        conns = list(_connections.values())
    for conn in conns:
        try:
            conn.flush(timeout)
        except Exception:  # a server gone for good: nothing more can be done at exit
            pass


def close_all() -> None:
    """Close every shared connection (tests; normally they live as long as the process)."""
    with _conn_lock:
        conns = list(_connections.values())
        _connections.clear()
    for conn in conns:
        try:
            conn.flush(5)
            loop_thread().run(conn.nc.close(), 5, conn.what)
        except Exception:  # already gone: nothing to release
            pass


import os as _os  # noqa: E402  (only for the fork hook)

_os.register_at_fork(after_in_child=_after_fork)
atexit.register(flush_all)
