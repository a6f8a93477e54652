"""Mailslots: one reader, any number of connectionless writers, messages queue.

``Mailslot.create`` makes the server (the read end) and owns the queue
segment of :mod:`._queue`; ``Mailslot.write`` appends to it from any
process; ``Mailslot.open`` (or ``interproc.connect("mailslot://NAME")``) gives
a write-only Channel.  With ``scope="domain"`` a write goes out as a multicast
datagram to every server of the name that opted in with ``domain=True``
(:mod:`._domain`).

Lifetime follows Win32: the mailslot exists while its server has it open.
``close()`` (or the server's death) makes writes fail with ``NotFound``
(``Mailslot.write``) or ``ChannelClosed`` (a writer channel); a dead
server's segment is "stale" for ``interproc ls`` and removed by ``interproc gc``
or by the next ``create`` of the same name.
"""

from __future__ import annotations

import functools
import os
import stat
import threading
import time
from collections import deque
from typing import Any, NamedTuple

from . import _domain
from .. import _registry
from .._channel import SendChannelBase
from .._codec import get_codec
from .._contract import ReceiveChannel
from .._errors import (
    AlreadyExists,
    ChannelClosed,
    HandleClosed,
    InterprocError,
    NotFound,
    PermissionDenied,
    ProtocolError,
    Timeout,
    map_os_error,
)
from .._naming import SCOPES, parse_segment_name, segment_name, segment_prefix, validate_name, validate_scope
from .._platform import SHM_DIR, owner_alive, shm_path
from .._shm import register_foreign_kind
from .._lifecycle import finalizer, run_quietly
from .._deadline import nobody_came
from ._queue import Gone, Queue, deadline_of

KIND = "mailslot"
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024
DEFAULT_MAX_MESSAGES = 10_000
DEFAULT_QUEUE_BYTES = 16 * 1024 * 1024  # tmpfs pages are only used once written
_MAX_MESSAGE_LIMIT = 0xFFFFFFF0  # record lengths are 32-bit
_WRITE_SCOPES = ("user", "global", "domain")
# read() takes up to this many queued messages per lock and hands them out one
# by one: the reader then barely competes with writers for the lock.
_READ_BATCH = 64


class Pending(NamedTuple):
    """What ``Mailslot.pending()`` reports (GetMailslotInfo's count and next size)."""

    count: int  # messages waiting to be read
    next_size: int | None  # size of the next message, None when the queue is empty


def _what(name: str, scope: str) -> str:
    return f"mailslot {name!r}" if scope == "user" else f"mailslot {name!r} ({scope})"


def as_view(data: Any) -> memoryview:
    view = data if isinstance(data, memoryview) else memoryview(data)
    if not view.c_contiguous:
        raise ValueError("mailslot messages must be contiguous buffers")
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def _remove_if_stale(path: str, scope: str, what: str) -> bool:
    """Unlink a segment whose owner is dead; True if it did."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return True
    try:
        if owner_alive(fd):
            return False
        st = os.fstat(fd)
        if scope == "user" and st.st_uid != os.getuid():
            return False
        try:
            # Only unlink the very file we probed, not a successor of that name.
            if os.stat(path).st_ino == st.st_ino:
                os.unlink(path)
        except FileNotFoundError:
            pass
        return True
    finally:
        os.close(fd)


def open_queue(name: str, scope: str) -> Queue:
    what = _what(name, scope)
    path = shm_path(segment_name(KIND, name, scope))  # type: ignore[arg-type]
    try:
        queue = Queue.open(path, scope, what)
    except FileNotFoundError:
        raise NotFound(f"{what}: no server has created it") from None
    except InterprocError:
        raise
    except OSError as exc:
        raise map_os_error(exc, what) from exc
    if queue.state != 1 or not queue.owner_alive():
        queue.close()
        raise NotFound(f"{what}: its server has closed or died")
    return queue


def _deliver_domain(queue: Queue, data: bytes) -> bool:
    """Receiver thread: queue a domain datagram's data; False if it had to be dropped."""
    try:
        return queue.put(memoryview(data), None, wait=False, owner=True)
    except (Gone, ProtocolError, ValueError):  # closed (or unmapped) meanwhile, or a full lock race
        return False


class Mailslot(ReceiveChannel):
    """The server (read end) of a mailslot.  Make one with :meth:`create`.

    A :class:`~interproc.ReceiveChannel`: ``recv()`` is ``read()``.
    """

    codec = get_codec("json")

    def __init__(self) -> None:  # pragma: no cover - use Mailslot.create
        raise TypeError("use Mailslot.create(name, ...) to make a mailslot server")

    @classmethod
    def create(
        cls,
        name: str,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_messages: int = DEFAULT_MAX_MESSAGES,
        *,
        scope: str = "user",
        mode: int | None = None,
        queue_bytes: int = DEFAULT_QUEUE_BYTES,
        domain: bool = False,
        authkey: bytes | None = None,
        insecure: bool = False,
        group: str = _domain.DOMAIN_GROUP,
        port: int = _domain.DOMAIN_PORT,
        interface: str | None = None,
        domain_max_message_size: int = _domain.DOMAIN_MAX_MESSAGE_SIZE,
        queue_group: str | None = None,
        token: str | None = None,
        nkeys_seed: str | None = None,
        tls: Any = None,
        timeout: float | None = None,
    ) -> "Mailslot":
        """Create the mailslot ``name``; ``AlreadyExists`` if a live server has it.

        Up to ``max_messages`` messages of at most ``max_message_size`` bytes
        (and ``queue_bytes`` in total) queue until read.  ``domain=True`` also
        receives domain broadcasts (``authkey=`` or ``insecure=True`` required).
        ``scope="nats://HOST:PORT"`` subscribes on a NATS server instead (every
        server of the name gets each message; those in one ``queue_group`` share
        them); ``token=``, ``nkeys_seed=``, ``tls=`` and ``timeout=`` are for that.
        """
        if isinstance(scope, str) and scope.lower().startswith(("nats://", "tls://")):
            validate_name(name)
            from ._nats import NatsMailslot

            return NatsMailslot._make(name, scope, max_message_size, max_messages, queue_group=queue_group,
                                      timeout=timeout, token=token, nkeys_seed=nkeys_seed, tls=tls)
        validate_name(name)
        file_mode = validate_scope(scope, mode)
        for value, label in ((max_message_size, "max_message_size"), (max_messages, "max_messages"), (queue_bytes, "queue_bytes")):
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if label == "max_message_size" else 1):
                raise ValueError(f"{label} must be a positive int, not {value!r}")
        if max_message_size > _MAX_MESSAGE_LIMIT:
            raise ValueError(f"max_message_size must be at most {_MAX_MESSAGE_LIMIT}, not {max_message_size}")
        what = _what(name, scope)
        key = _domain.check_security(authkey, insecure, what) if domain else None
        path = shm_path(segment_name(KIND, name, scope))  # type: ignore[arg-type]
        for _attempt in range(3):
            try:
                queue = Queue.create(SHM_DIR, path, file_mode, max_message_size, max_messages, queue_bytes, what)
                break
            except FileExistsError:
                # A dead server's leftover does not keep the name (Win32: the
                # mailslot vanished with its server); a live one does.
                if not _remove_if_stale(path, scope, what):
                    raise AlreadyExists(f"{what} already exists (its server is alive)") from None
            except OSError as exc:
                raise map_os_error(exc, what) from exc
        else:
            raise AlreadyExists(f"{what} keeps being re-created by another process")
        self = object.__new__(cls)
        self.name = name
        self.scope = scope
        self.path = path
        self.max_message_size = max_message_size
        self.max_messages = max_messages
        self._queue = queue
        self._receiver = None
        self._local: deque[bytes] = deque()  # taken from the segment in one batch, not yet read
        self._closed = False
        self._finalizer = finalizer(self, Mailslot._finalize, queue, path, [None], os.getpid(),
                                    what=f"Mailslot {name!r}")
        if domain:
            try:
                # The thread must not hold the Mailslot itself, or a dropped
                # server would never be collected: it gets only the queue.
                self._receiver = _domain.Receiver(
                    name,
                    functools.partial(_deliver_domain, queue),
                    authkey=key,
                    group=group,
                    port=port,
                    interface=interface,
                    max_message_size=min(max_message_size, domain_max_message_size),
                )
            except OSError as exc:
                self.close()
                raise map_os_error(exc, f"{what}: joining multicast group {group}:{port}") from exc
            self._finalizer.detach()
            self._finalizer = finalizer(self, Mailslot._finalize, queue, path, [self._receiver], os.getpid(),
                                        what=f"Mailslot {name!r}")
        return self

    @staticmethod
    def _finalize(queue: Queue, path: str, receiver: list, pid: int) -> None:
        if os.getpid() != pid:
            # A forked child's copy: the mailslot stays its creator's.
            queue.close()
            return
        if receiver[0] is not None:
            receiver[0].close()
        try:
            queue.mark_closed()
            try:
                if os.stat(path).st_ino == queue.inode:
                    os.unlink(path)
            except FileNotFoundError:
                pass
        finally:
            queue.close()

    # -- reading -------------------------------------------------------
    def read(self, *, timeout: float | None = None) -> bytes:
        """The oldest message; waits up to ``timeout`` seconds (``Timeout``), None = forever."""
        if self._local:
            return self._local.popleft()
        self._check_open()
        try:
            got = self._queue.get_many(deadline_of(timeout), max_count=_READ_BATCH)
        except Gone:  # closed by another thread while this one waited
            raise HandleClosed(f"{_what(self.name, self.scope)} was closed while reading") from None
        except ProtocolError:
            raise
        except ValueError:  # the mapping went away under us: the same thing
            if self._closed:
                raise HandleClosed(f"{_what(self.name, self.scope)} was closed while reading") from None
            raise
        first = got[0]
        if len(got) > 1:
            self._local.extend(got[1:])
        return first

    def recv(self, *, timeout: float | None = None) -> bytes:
        """The contract's name for :meth:`read`."""
        return self.read(timeout=timeout)

    @property
    def queue(self) -> Queue:
        """The shared-memory queue this slot reads; a driver that waits its own
        way (the asyncio face) sleeps on its futex words."""
        return self._queue

    def try_read(self) -> bytes | None:
        """A message if one is here, else None, never waiting for one (the
        asyncio face's step between waits)."""
        if self._local:
            return self._local.popleft()
        self._check_open()
        try:
            got = self._queue.get_many(time.monotonic() + 0.05, wait=False, max_count=_READ_BATCH)
        except Gone:
            raise HandleClosed(f"{_what(self.name, self.scope)} is closed") from None
        if not got:
            return None
        self._local.extend(got[1:])
        return got[0]

    def read_nowait(self) -> bytes:
        """The oldest message, or ``Timeout`` at once if there is none."""
        return self.read(timeout=0)

    def pending(self) -> Pending:
        """``Pending(count, next_size)``: queued messages and the size of the next one."""
        self._check_open()
        count, next_size, _written = self._queue.status()
        if self._local:
            return Pending(count + len(self._local), len(self._local[0]))
        return Pending(count, next_size)

    def __iter__(self):
        """Yield messages as they arrive, until the mailslot is closed."""
        while not self._closed:
            yield self.read()

    # -- domain statistics -----------------------------------------------
    @property
    def dropped(self) -> int:
        """Domain datagrams known lost: sequence gaps plus those that found the queue full."""
        return self._receiver.dropped if self._receiver else 0

    @property
    def rejected(self) -> int:
        """Domain datagrams thrown away: unsigned, badly signed, malformed, replayed or too large."""
        return self._receiver.rejected if self._receiver else 0

    @property
    def domain_address(self) -> tuple[str, int] | None:
        """(group, port) this server receives domain broadcasts on, or None."""
        return self._receiver.address if self._receiver else None

    # -- writing ---------------------------------------------------------
    @staticmethod
    def write(
        name: str,
        data: Any,
        *,
        timeout: float | None = None,
        scope: str = "user",
        authkey: bytes | None = None,
        insecure: bool = False,
        ttl: int = _domain.DOMAIN_TTL,
        group: str = _domain.DOMAIN_GROUP,
        port: int = _domain.DOMAIN_PORT,
        interface: str | None = None,
        max_message_size: int = _domain.DOMAIN_MAX_MESSAGE_SIZE,
        token: str | None = None,
        nkeys_seed: str | None = None,
        tls: Any = None,
    ) -> None:
        """Write one message to the server of ``name``, with no connection.

        Waits only while the server's queue is full (up to ``timeout``, then
        ``Timeout``).  ``NotFound`` if no live server has the name,
        ``MessageTooLarge`` over its ``max_message_size``.  ``scope="domain"``
        multicasts the message to every opted-in server on the network instead:
        unreliable, at most ``max_message_size`` (424) bytes, signed with
        ``authkey`` (or sent unsigned with ``insecure=True``).  ``scope="nats://..."``
        publishes on a NATS server (``token=``, ``nkeys_seed=``, ``tls=`` pass through).
        """
        view = as_view(data)
        if isinstance(scope, str) and scope.lower().startswith(("nats://", "tls://")):
            validate_name(name)
            from . import _nats

            _nats.write(name, view, scope, timeout=timeout, token=token, nkeys_seed=nkeys_seed, tls=tls)
            return
        if scope == "domain":
            validate_name(name)
            key = _domain.check_security(authkey, insecure, _what(name, scope))
            _domain.send(
                name, view, authkey=key, ttl=ttl, group=group, port=port, interface=interface,
                max_message_size=max_message_size,
            )
            return
        queue = writers.lookup(name, scope)
        if queue is None:  # a cached name was validated when it was opened
            validate_name(name)
            if scope not in SCOPES:
                raise ValueError(f"scope must be one of {', '.join(map(repr, _WRITE_SCOPES))}, not {scope!r}")
        deadline = None if timeout is None else deadline_of(timeout)
        for _attempt in range(2):
            if queue is None:
                queue = writers.get(name, scope)
            try:
                queue.put(view, deadline)
                return
            except Gone:
                # The cached mapping may belong to a server that has since
                # been replaced: drop it and look the name up once more.
                writers.drop(name, scope)
                queue = None
        raise NotFound(f"{_what(name, scope)}: its server has closed or died")

    @staticmethod
    def open(name: str, *, scope: str = "user", timeout: float | None = None, codec: str = "json") -> "MailslotWriter":
        """A write-only Channel to the server of ``name``.  ``NotFound`` at once if there is
        none, unless ``timeout`` is given: then wait that long for a server to appear
        (``Timeout`` if none did)."""
        validate_name(name)
        if isinstance(scope, str) and scope.lower().startswith(("nats://", "tls://")):  # a publisher (._nats)
            from ._nats import NatsMailslotWriter

            return NatsMailslotWriter(name, scope, codec=codec, timeout=timeout)
        validate_scope(scope, None if scope == "user" else 0o600)
        deadline = deadline_of(timeout)
        while True:
            try:
                return MailslotWriter(open_queue(name, scope), name, scope, codec=codec)
            except NotFound:
                if deadline is None:
                    raise
                if time.monotonic() >= deadline:
                    raise nobody_came(f"mailslot {name!r}", timeout) from None
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    # -- lifetime --------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise HandleClosed(f"{_what(self.name, self.scope)} was used after its close()")

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the mailslot: unread messages are discarded and writers get NotFound."""
        if not self._closed:
            self._closed = True
            self._local.clear()
            run_quietly(self._finalizer)

    def __enter__(self) -> "Mailslot":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Mailslot {self.name!r} scope={self.scope} {state}>"


class MailslotWriter(SendChannelBase):
    """A write-only channel to one mailslot (``interproc.connect("mailslot://NAME")``):
    a :class:`~interproc.SendChannel`, with no ``recv``."""

    def __init__(self, queue: Queue, name: str, scope: str, *, codec: str = "json") -> None:
        self._queue = queue
        self.name = name
        self.scope = scope
        super().__init__(codec=codec)

    def _resources(self) -> Any:
        return self._queue

    @staticmethod
    def _finalize(queue: Queue) -> None:
        queue.close()

    def _send_bytes(self, data: Any, timeout: float | None) -> None:
        try:
            self._queue.put(as_view(data), deadline_of(timeout))
        except Gone:
            raise ChannelClosed(f"{_what(self.name, self.scope)}: its server has closed or died") from None

    @property
    def max_message_size(self) -> int:
        return self._queue.max_message_size


class WriterCache:
    """Mappings that ``Mailslot.write`` keeps open between calls (a few, LRU-ish).

    Evicted mappings are not closed here, since another thread may be writing
    through one; they are unmapped when the last reference goes (Queue.__del__).
    """

    SIZE = 16

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[tuple[str, str], Queue] = {}

    def lookup(self, name: str, scope: str) -> Queue | None:
        """The cached mapping, without locking (the write fast path)."""
        return self._queues.get((name, scope))

    def after_fork(self) -> None:
        # The child's mappings are shared with the parent but its bookkeeping
        # (and a lock another thread may have held) is not to be trusted.
        self._lock = threading.Lock()
        self._queues = {}

    def get(self, name: str, scope: str) -> Queue:
        queue = self.lookup(name, scope)
        if queue is not None:
            return queue
        queue = open_queue(name, scope)
        with self._lock:
            # A mapping of a closed or dead mailslot pins its tmpfs pages in
            # memory: forget those whenever a new one comes in.
            for key, old in list(self._queues.items()):
                if old.state != 1 or not old.owner_alive():
                    del self._queues[key]
            self._queues[(name, scope)] = queue
            while len(self._queues) > self.SIZE:
                del self._queues[next(iter(self._queues))]
        return queue

    def drop(self, name: str, scope: str) -> None:
        with self._lock:
            self._queues.pop((name, scope), None)

    def clear(self) -> None:
        with self._lock:
            self._queues = {}


writers = WriterCache()
os.register_at_fork(after_in_child=writers.after_fork)


def connect_address(addr: Any, *, timeout: float | None = None, scope: str | None = None, codec: str | None = None, **kw: Any) -> MailslotWriter:
    """``interproc.connect("mailslot://NAME")``: a write-only Channel."""
    if kw:
        raise TypeError(f"mailslot:// addresses take no options {sorted(kw)}")
    extra = set(addr.query) - {"scope", "codec"}
    if extra:
        raise ValueError(f"address {addr.text!r}: unknown option(s) {sorted(extra)}; mailslot:// takes scope= and codec=")
    scope = scope or addr.query.get("scope", "user")
    if scope == "domain":
        raise ValueError(f"address {addr.text!r}: domain broadcast has no channel; use Mailslot.write(..., scope='domain')")
    return Mailslot.open(addr.name, scope=scope, timeout=timeout, codec=codec or addr.query.get("codec", "json"))


# -- interproc ls / gc ---------------------------------------------------
def _segments() -> list[tuple[str, str, str]]:
    found = []
    try:
        entries = os.listdir(SHM_DIR)
    except OSError:
        return found
    prefixes = [segment_prefix(s) for s in SCOPES]  # type: ignore[arg-type]
    for entry in entries:
        if not any(entry.startswith(p) for p in prefixes):
            continue
        parsed = parse_segment_name(entry)
        if parsed and parsed[1] == KIND:
            found.append((parsed[0], parsed[2], os.path.join(SHM_DIR, entry)))
    return found


def _list() -> list[_registry.ObjectInfo]:
    infos = []
    for scope, name, path in _segments():
        try:
            queue = Queue.open(path, scope, f"mailslot {name!r}")
        except (OSError, ProtocolError, PermissionDenied):
            continue
        try:
            st = os.fstat(queue.fd)
            alive = queue.owner_alive() and queue.state == 1
            details = {"max_message_size": queue.max_message_size, "max_messages": queue.max_messages}
            try:
                count, _next, written = queue.status(timeout=0.5) if alive else (None, None, None)
                if count is not None:
                    details.update(queued=count, written=written)
            except (Timeout, ProtocolError):
                pass
            infos.append(_registry.ObjectInfo(
                kind=KIND, name=name, scope=scope, owner_pid=queue.owner_pid(), size=st.st_size,
                mode=stat.S_IMODE(st.st_mode), state=_registry.STATE_ALIVE if alive else _registry.STATE_STALE,
                path=path, details=details,
            ))
        finally:
            queue.close()
    return infos


def _collect() -> list[_registry.ObjectInfo]:
    removed = []
    for info in _list():
        if info.state == _registry.STATE_STALE and _remove_if_stale(info.path, info.scope, f"mailslot {info.name!r}"):
            removed.append(info)
    return removed


_registry.register(KIND, _list, _collect,
                   remove=lambda info: _remove_if_stale(info.path, info.scope, f"mailslot {info.name!r}"))
# Our segments have their own layout: the generic segment lister must leave them to us.
register_foreign_kind(KIND)
