"""``shm://NAME``: a duplex point-to-point channel over shared memory.

Pieces (see docs/shmchannel.md for the whole story):

* The **listener** owns a small segment of kind ``chanlisten`` named NAME: its
  owner, the default capacity, a connection counter, a futex word and a
  backlog of connection ids waiting to be accepted.
* Each **connection** is its own segment of kind ``chan`` named
  ``NAME.<id>``, where ``id`` (base 36) is the listener's connection counter
  with 24 random bits below it: ordered for the backlog, yet not guessable,
  so nobody can squat the names connections will take.  The connector
  creates it exclusively (link(), like O_EXCL) and skips a name it finds
  taken.  The segment is a control block plus two single-producer single-consumer
  byte rings (one per direction).  The connecting side creates and
  initialises it, queues its id in the listener's backlog and returns at
  once (like a socket's backlog); ``accept()`` takes the oldest id.
  Until accepted the segment is persistent, so a client that sends and
  closes before the server accepts does not lose its messages; ``accept``
  (or the listener's ``close``) turns it back into a normal Win32-lifetime
  segment.
* The rings, the wait policy (spin, then futex sleep) and every bounds check
  of what is read from the segment live in C (``_native.ShmChannel``); the
  channel's ``send``/``recv``/``recv_into``/``recv_view`` are that object's
  methods, bound per instance, so the hot path runs no Python code at all.
* Peer death: each side holds a pidfd of the other process; a sleeping waiter
  wakes every 100 ms to poll it, so a SIGKILLed peer is noticed within about
  that long.  A robust mutex could not be used instead: a futex sleep cannot
  wait on two words, and robust mutexes belong to threads, not processes.
"""

from __future__ import annotations

import os
import re
import secrets
import struct
import time
from typing import Any

from .. import _native
from .._address import Address
from .._channel import Channel, Listener
from .._codec import Codec
from .._errors import (AlreadyExists, ChannelClosed, HandleClosed, InterprocError, MessageTooLarge,
                      NotFound, PermissionDenied, ProtocolError, Timeout)
from .._naming import NAME_MAX, Scope, validate_name
from .._platform import ProcessId, current_process, is_alive
from .._registry import register
from .._shm import F_PERSISTENT, OFF_FLAGS, SharedMemory, _HeaderLock, register_details
from .._deadline import check_timeout, nobody_came

_native.set_errors(closed=ChannelClosed, timeout=Timeout, protocol=ProtocolError,
                   too_large=MessageTooLarge, handle_closed=HandleClosed)

DEFAULT_CAPACITY = 4 << 20  # per direction: messages up to 2 MiB - 8 bytes
MIN_CAPACITY = _native.CHAN_MIN_CAPACITY
MAX_CAPACITY = 1 << 30
DEFAULT_SPIN_US = 50.0  # see docs/shmchannel.md "Why 50 us"
POLICIES = ("hybrid", "spin", "sleep")
BACKLOG = 64
CONNECT_POLL = 0.02  # how often connect(timeout=) looks for a listener to appear


class _ChanSegment(SharedMemory):
    KIND = "chan"


class _ListenSegment(SharedMemory):
    KIND = "chanlisten"


# -- connection segment control block (the rings themselves are C's business;
# the layout numbers come from C, src/native/ring.h)
_LAYOUT = _native.CHAN_LAYOUT
CHAN_MAGIC = _native.CHAN_MAGIC
_CTRL = struct.Struct("<IIQII")  # magic, version, capacity, flags, pad
_IDENT = struct.Struct("<I4xQ")
OFF_CHAN_FLAGS = _LAYOUT["OFF_FLAGS"]  # (OFF_FLAGS is the segment header's)
OFF_SIDE = (_LAYOUT["OFF_SIDE_A"], _LAYOUT["OFF_SIDE_B"])  # accepter, connector
OFF_CLOSED = _LAYOUT["OFF_CLOSED"]
OFF_RINGS = (_LAYOUT["OFF_RING0"], _LAYOUT["OFF_RING1"])
RING_HEAD, RING_TAIL = _LAYOUT["RING_HEAD"], _LAYOUT["RING_TAIL"]
RING_WORDS = (_LAYOUT["RING_DATA_SEQ"], _LAYOUT["RING_SPACE_SEQ"])  # futex words
F_ACCEPTED = 1

# -- listener segment
LISTEN_MAGIC = 0x534C5049  # "IPLS"
_LCTRL = struct.Struct("<II")
OFF_LOWNER, OFF_LCAP, OFF_NEXT, OFF_ASEQ, OFF_LCLOSED, OFF_BACKLOG = 8, 24, 32, 64, 68, 128
OFF_LBELL = 80  # the listener's doorbell for fileno(): fd u32, fdwait u32, inode u64
LISTEN_SIZE = OFF_BACKLOG + 8 * BACKLOG
_U32 = {"size": 4, "signed": False}
_U64 = {"size": 8, "signed": False}

# Connection ids: counter (32 bits, wrapping) << 24 | 24 random bits; written
# in base 36 they take at most 11 characters after the listener's name.
_ID_RANDOM_BITS = 24
_ID_MASK = (1 << 56) - 1
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def conn_suffix(conn: int) -> str:
    """The base-36 spelling of a connection id in its segment's name."""
    out = ""
    while True:
        conn, digit = divmod(conn, 36)
        out = _B36[digit] + out
        if not conn:
            return out


def _conn_name(name: str, conn: int) -> str:
    return f"{name}.{conn_suffix(conn)}"


_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMG]i?B?|B)?\s*", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "kib": 1024, "kb": 1000, "m": 1 << 20, "mib": 1 << 20,
          "mb": 10**6, "g": 1 << 30, "gib": 1 << 30, "gb": 10**9}


def parse_size(value: Any, what: str = "capacity") -> int:
    """``65536``, ``"64KiB"``, ``"64MiB"``, ``"1.5M"`` -> bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        m = _SIZE_RE.fullmatch(value)
        if m and (m.group(2) or "").lower() in _UNITS:
            return int(float(m.group(1)) * _UNITS[(m.group(2) or "").lower()])
    raise ValueError(f"{what} must be a size like 65536, '64KiB' or '64MiB', not {value!r}")


def _check_capacity(value: Any) -> int:
    cap = parse_size(value)
    if not MIN_CAPACITY <= cap <= MAX_CAPACITY:
        raise ValueError(f"capacity must be {MIN_CAPACITY} bytes .. {MAX_CAPACITY >> 20} MiB, got {cap}")
    return -(-cap // 4096) * 4096  # whole pages


def _check_policy(policy: Any, spin_us: Any) -> tuple[str, float]:
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}")
    try:
        spin = float(spin_us)
    except (TypeError, ValueError):
        raise ValueError(f"spin_us must be a number of microseconds, not {spin_us!r}") from None
    if not 0 <= spin <= 1e7:
        raise ValueError(f"spin_us must be 0..1e7 microseconds, got {spin_us!r}")
    return policy, spin


def _pidfd(ident: ProcessId) -> int:
    """A pidfd for that very process; -2 when it is already gone."""
    try:
        fd = os.pidfd_open(ident.pid)
    except ProcessLookupError:
        return -2
    except OSError:
        return -1  # no pidfd support: death is then only seen as a closed flag
    # Opened after the pid could have been reused: confirm it is still the
    # process we mean (same start time) now that the fd pins it.
    if not is_alive(ident):
        os.close(fd)
        return -2
    return fd


def _read_ident(buf: memoryview, off: int) -> ProcessId:
    return ProcessId(*_IDENT.unpack_from(buf, off))


class ShmChannel(Channel):
    """One end of a ``shm://`` connection.  Get one from ``interproc.connect``
    or ``Listener.accept``.

    ``send(data, timeout=)`` copies any contiguous buffer into the ring;
    ``recv(timeout=) -> bytes``; ``recv_into(buffer, timeout=) -> int``;
    ``recv_view(timeout=) -> memoryview`` lends the message in place (read-only)
    until the view is released (``with ch.recv_view() as v:`` or
    ``v.release()``).  A message may be at most ``max_message`` bytes (half the
    ring, less 8); larger ones raise ``MessageTooLarge``.
    """

    def __init__(self, seg: SharedMemory, side: int, peer: ProcessId, *, policy: str,
                 spin_us: float, codec: str | Codec, address: str) -> None:
        self.trusted = seg.scope == "user"
        self.address = address
        self.name = seg.name
        pidfd = _pidfd(peer)
        try:
            self._core = _native.ShmChannel(seg.buf, side, pidfd, policy=policy, spin_us=spin_us)
        except BaseException:
            if pidfd >= 0:
                os.close(pidfd)
            raise
        self._seg = seg
        super().__init__(codec=codec)
        core = self._core
        # The hot path: the C methods themselves, no Python frame in between.
        self.send = core.send  # type: ignore[method-assign]
        self.recv = core.recv  # type: ignore[method-assign]
        self.recv_into = core.recv_into
        self.recv_view = core.recv_view

    def _resources(self) -> Any:
        return (self._core, self._seg)

    @staticmethod
    def _finalize(resources: Any) -> None:
        core, seg = resources
        core.close()
        seg.close()

    def _send_bytes(self, data: Any, timeout: float | None) -> None:
        self._core.send(data, timeout=timeout)

    def _recv_bytes(self, timeout: float | None) -> bytes:
        return self._core.recv(timeout=timeout)

    # After close() the bound C methods are dropped from the instance, so these
    # Python methods (and SendChannelBase.send / recv) raise HandleClosed.
    _HOT = ("send", "recv", "recv_into", "recv_view")

    def recv_into(self, buffer: Any, *, timeout: float | None = None) -> int:  # type: ignore[no-redef]
        raise self._handle_closed("recv_into")

    def recv_view(self, *, timeout: float | None = None) -> memoryview:  # type: ignore[no-redef]
        raise self._handle_closed("recv_view")

    def close(self) -> None:
        for name in self._HOT:
            self.__dict__.pop(name, None)
        super().close()

    def fileno(self) -> int:
        """A descriptor that polls readable when ``recv`` may not block.

        It also becomes readable when the peer closes or dies.  Readiness may
        be spurious: re-check with ``recv(timeout=0)`` (``Timeout`` = nothing
        yet).  Each call drains and re-arms the doorbell behind it, so call
        ``fileno()`` before every wait (``select.select`` does); a
        ``recv`` that finds the ring empty re-arms it too.  The spin fast
        path does not change: the sender writes to the doorbell only while
        this end is armed, as it would futex-wake a sleeper.  Both ends must
        run as the same user.  The descriptor belongs to the channel: do not
        close it; it is closed with the channel.
        """
        if self._closed:
            raise HandleClosed(f"{self.address}: fileno() on a closed channel")
        return self._core.fileno()

    @property
    def core(self) -> Any:
        """The C ring pair (``_native.ShmChannel``) that both drivers move bytes
        through: the blocking methods here, the asyncio ones in :mod:`._aio`."""
        return self._core

    def ready(self) -> bool:
        """True when ``recv()`` would not wait: a message is queued or the peer
        has gone (``interproc.wait`` confirms a doorbell ring with this)."""
        try:
            return bool(self._core.wait_recv(timeout=0)) or self._core.peer_closed
        except ChannelClosed:
            return True

    @property
    def capacity(self) -> int:
        """Ring size in bytes, per direction."""
        return self._core.capacity

    @property
    def max_message(self) -> int:
        return self._core.max_message

    @property
    def policy(self) -> str:
        return self._core.policy

    @property
    def peer_closed(self) -> bool:
        """The peer closed its end or died (messages may still be queued)."""
        return self._core.peer_closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"capacity={self.capacity} policy={self.policy}"
        return f"<ShmChannel {self.name!r} {state}>"


def _init_listener(capacity: int):
    def init(buf: memoryview) -> None:
        me = current_process()
        _IDENT.pack_into(buf, OFF_LOWNER, me.pid, me.start)
        struct.pack_into("<QQ", buf, OFF_LCAP, capacity, 0)
        # The magic last: a connector that sees it sees a whole header.
        _native.atomic_store(buf, 0, int.from_bytes(_LCTRL.pack(LISTEN_MAGIC, 1), "little"), **_U64)
    return init


class ShmListener(Listener):
    """Accepts ``shm://NAME`` connections; one ``ShmChannel`` per ``accept()``."""

    def __init__(self, name: str, *, capacity: Any = DEFAULT_CAPACITY, policy: str = "hybrid",
                 spin_us: Any = DEFAULT_SPIN_US, codec: str | Codec = "json", scope: Scope = "user",
                 mode: int | None = None) -> None:
        validate_name(name)
        if len(name) > NAME_MAX - 12:
            raise ValueError(f"shm:// name {name!r} is too long: at most {NAME_MAX - 12} characters "
                             "(connections append a counter)")
        self._capacity = _check_capacity(capacity)
        self._policy, self._spin_us = _check_policy(policy, spin_us)
        self._codec = codec
        self.name, self.scope = name, scope
        self.address = f"shm://{name}"
        seg = _ListenSegment.create(name, LISTEN_SIZE, scope=scope, mode=mode)
        _init_listener(self._capacity)(seg.buf)
        self._seg = seg
        self._buf = seg.buf
        self._closed = False
        self._interrupts = 0
        self._bell = _native.Doorbell()  # src/native/doorbell.c, as ShmChannel and pub/sub use
        self._pid = os.getpid()  # only this process closes the listener for everyone

    @property
    def closed(self) -> bool:
        return self._closed

    def fileno(self) -> int:
        """A descriptor that polls readable when ``accept`` may not block (or
        the listener was closed); as ``ShmChannel.fileno``, each call drains
        and re-arms it, so call it before every wait.  Connectors write to it
        only while it is armed."""
        if self._closed:
            raise HandleClosed(f"{self.address}: fileno() on a closed listener")
        fd = self._bell.open(self._buf, OFF_LBELL, self.address)
        self._bell.drain()
        _native.atomic_store(self._buf, OFF_LBELL + 4, 1, **_U32)  # arm, then re-check
        if any(_native.atomic_load(self._buf, OFF_BACKLOG + 8 * i, **_U64) for i in range(BACKLOG)):
            self._bell.ring()
        return fd

    def _take(self) -> int | None:
        """Pop the oldest queued connection id (ids are connection numbers + 1)."""
        buf = self._buf
        best = None
        for i in range(BACKLOG):
            v = _native.atomic_load(buf, OFF_BACKLOG + 8 * i, **_U64)
            if v and (best is None or v < best[1]):
                best = (i, v)
        if best is None:
            return None
        # Connectors only fill empty slots; an exchange keeps two threads
        # accepting at once from taking the same connection.
        if _native.atomic_exchange(buf, OFF_BACKLOG + 8 * best[0], 0, **_U64) != best[1]:
            return self._take()
        return best[1] - 1

    def accept(self, *, timeout: float | None = None, _cancellable: bool = False) -> ShmChannel:
        """Wait for a connection; ``Timeout`` after ``timeout`` seconds."""
        interrupts = self._interrupts
        check_timeout(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            # Load the word before looking at _closed: close() sets _closed and
            # then bumps the word, so one of the two is always seen (no lost wake-up).
            seq = _native.atomic_load(self._buf, OFF_ASEQ, **_U32)
            if self._closed:
                raise HandleClosed(f"accept on {self.address} after the listener's close()")
            conn = self._take()
            if conn is not None:
                ch = self._open(conn)
                if ch is not None:
                    return ch
                continue
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise Timeout(f"{self.address}: no connection within {timeout} s")
            # Woken by connectors (they bump the word) and by close().
            _native.futex_wait(self._buf, OFF_ASEQ, seq, left)
            if _cancellable and self._interrupts != interrupts:
                raise Timeout(f"{self.address}: accept was cancelled")

    def _open(self, conn: int) -> ShmChannel | None:
        seg_name = _conn_name(self.name, conn)
        try:
            seg = _ChanSegment.open(seg_name, scope=self.scope)
        except NotFound:
            return None  # the connector gave up before we got here
        try:
            _make_ephemeral(seg)  # from now on it lives as long as its handles
            buf = seg.buf
            magic, _version, cap, flags, _ = _CTRL.unpack_from(buf, 0)
            if magic != CHAN_MAGIC:
                raise ProtocolError(f"{self.address}: connection {conn} has a corrupted segment")
            peer = _read_ident(buf, OFF_SIDE[1])
            me = current_process()
            _IDENT.pack_into(buf, OFF_SIDE[0], me.pid, me.start)
            _native.atomic_store(buf, OFF_CHAN_FLAGS, flags | F_ACCEPTED, **_U32)
            return ShmChannel(seg, 0, peer, policy=self._policy, spin_us=self._spin_us,
                              codec=self._codec, address=self.address)
        except BaseException:
            seg.close()
            raise

    def _interrupt(self) -> None:
        """Wake this process's threads blocked in accept()."""
        self._interrupts += 1
        _native.atomic_add(self._buf, OFF_ASEQ, 1, **_U32)
        _native.futex_wake(self._buf, OFF_ASEQ)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if os.getpid() != self._pid:
            # A forked child closing what it inherited: drop its own handle only;
            # the listener, its name and its queue stay its parent's.
            self._seg.close()
            return
        buf = self._buf
        _native.atomic_store(buf, OFF_LCLOSED, 1, **_U32)
        self._interrupt()
        self._bell.ring()  # wake our own pollers, then let go
        self._bell.close(buf, OFF_LBELL)
        try:
            self._seg.unlink()  # new connects fail with NotFound at once
        except InterprocError:
            pass
        # Connections still queued: tell their clients, and let the segments go.
        while (conn := self._take()) is not None:
            try:
                seg = _ChanSegment.open(_conn_name(self.name, conn), scope=self.scope)
            except (NotFound, ProtocolError, PermissionDenied):
                continue
            try:
                _native.atomic_store(seg.buf, OFF_CLOSED, 1, **_U32)
                for ring in OFF_RINGS:
                    for word in RING_WORDS:
                        _native.atomic_add(seg.buf, ring + word, 1, **_U32)
                        _native.futex_wake(seg.buf, ring + word)
                _make_ephemeral(seg)
            finally:
                seg.close()
        self._seg.close()

    def __repr__(self) -> str:
        return f"<ShmListener {self.address!r}{' closed' if self._closed else ''}>"


def _make_ephemeral(seg: SharedMemory) -> None:
    """Clear the persistent flag a connection carries until it is accepted."""
    hdr = seg._map.buf
    with _HeaderLock(hdr, seg._path):
        flags = struct.unpack_from("<I", hdr, OFF_FLAGS)[0]
        struct.pack_into("<I", hdr, OFF_FLAGS, flags & ~F_PERSISTENT)


def _open_listener(name: str, scope: Scope) -> tuple[SharedMemory, ProcessId, int]:
    """Open a live listener: (segment, owner, default capacity); NotFound if none."""
    seg = _ListenSegment.open(name, scope=scope)
    try:
        buf = seg.buf
        magic, _ = _LCTRL.unpack_from(buf, 0)
        if magic == 0:  # its creator is still writing the header: not listening yet
            raise NotFound(f"shm://{name}: the listener is still being set up")
        if magic != LISTEN_MAGIC:
            raise ProtocolError(f"shm://{name}: the listener segment is corrupted")
        owner = _read_ident(buf, OFF_LOWNER)
        cap = struct.unpack_from("<Q", buf, OFF_LCAP)[0]
        if _native.atomic_load(buf, OFF_LCLOSED, **_U32) or not is_alive(owner):
            raise NotFound(f"shm://{name}: nobody listens (the listener closed or died)")
        return seg, owner, cap
    except BaseException:
        seg.close()
        raise


def connect(name: str, *, timeout: float | None = None, capacity: Any = None, policy: str = "hybrid",
            spin_us: Any = DEFAULT_SPIN_US, codec: str | Codec = "json",
            scope: Scope = "user") -> ShmChannel:
    """Connect to the listener at ``shm://name``.

    ``NotFound`` at once when nobody listens, unless ``timeout`` is given: then
    wait that long for a listener to appear (and for a free backlog slot).
    ``capacity`` (bytes per direction) defaults to the listener's.
    """
    validate_name(name)
    policy, spin = _check_policy(policy, spin_us)
    cap = None if capacity is None else _check_capacity(capacity)
    check_timeout(timeout)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            lseg, owner, default_cap = _open_listener(name, scope)
            break
        except NotFound:
            if deadline is None:
                raise NotFound(f"shm://{name}: nobody listens") from None
            if time.monotonic() >= deadline:
                raise nobody_came(f"shm://{name}", timeout) from None
            time.sleep(CONNECT_POLL)
    try:
        if cap is None:
            try:
                cap = _check_capacity(default_cap)
            except ValueError:
                raise ProtocolError(f"shm://{name}: the listener advertises a bad capacity") from None
        # A global listener's connections get the listener's permissions.
        mode = os.fstat(lseg._map.fd).st_mode & 0o777 if scope == "global" else None
        seg, conn = _create_connection(name, lseg.buf, cap, owner, scope, mode)
        try:
            _enqueue(name, lseg.buf, conn, deadline)
            ch = ShmChannel(seg, 1, owner, policy=policy, spin_us=spin, codec=codec,
                            address=f"shm://{name}")
        except BaseException:
            _make_ephemeral(seg)
            seg.close()
            raise
    finally:
        lseg.close()
    return ch


def _ring_listener(lbuf: memoryview) -> None:
    """Ring the listener's doorbell (src/native/doorbell.c reopens its pipe
    through /proc/PID/fd/N: only a FIFO with the published inode)."""
    _native.ring_doorbell(lbuf, OFF_LBELL, _read_ident(lbuf, OFF_LOWNER).pid)


def _create_connection(name: str, lbuf: memoryview, cap: int, owner: ProcessId,
                       scope: Scope, mode: int | None) -> tuple[SharedMemory, int]:
    me = current_process()
    for _ in range(1000):
        count = _native.atomic_add(lbuf, OFF_NEXT, 1, **_U64)
        conn = ((count << _ID_RANDOM_BITS) | secrets.randbits(_ID_RANDOM_BITS)) & _ID_MASK
        try:
            seg = _ChanSegment.create(_conn_name(name, conn), _native.CHAN_DATA_OFFSET + 2 * cap,
                                      scope=scope, mode=mode, persistent=True)
        except (AlreadyExists, PermissionDenied):
            continue  # left over from an earlier listener of that name, or squatted
        buf = seg.buf
        _CTRL.pack_into(buf, 0, CHAN_MAGIC, _native.CHAN_VERSION, cap, 0, 0)
        _IDENT.pack_into(buf, OFF_SIDE[0], owner.pid, owner.start)
        _IDENT.pack_into(buf, OFF_SIDE[1], me.pid, me.start)
        return seg, conn
    raise InterprocError(f"shm://{name}: could not find a free connection name")


def _enqueue(name: str, lbuf: memoryview, conn: int, deadline: float | None) -> None:
    while True:
        for i in range(BACKLOG):
            ok, _ = _native.atomic_compare_exchange(lbuf, OFF_BACKLOG + 8 * i, 0, conn + 1, **_U64)
            if ok:
                _native.atomic_add(lbuf, OFF_ASEQ, 1, **_U32)
                _native.futex_wake(lbuf, OFF_ASEQ)
                if _native.atomic_exchange(lbuf, OFF_LBELL + 4, 0, **_U32):
                    _ring_listener(lbuf)
                return
        if _native.atomic_load(lbuf, OFF_LCLOSED, **_U32):
            raise NotFound(f"shm://{name}: the listener closed")
        if deadline is None or time.monotonic() >= deadline:
            raise Timeout(f"shm://{name}: the listener's backlog of {BACKLOG} is full")
        time.sleep(CONNECT_POLL)


# -- interproc.connect / interproc.listen ------------------------------------

def _options(addr: Address, kw: dict[str, Any]) -> dict[str, Any]:
    opts: dict[str, Any] = dict(addr.query)
    opts.update(kw)
    known = {"capacity", "policy", "spin_us", "codec", "scope", "mode"}
    unknown = set(opts) - known
    if unknown:
        raise ValueError(f"{addr.text or 'shm://'}: unknown option(s) {', '.join(sorted(unknown))}; "
                         f"shm:// takes {', '.join(sorted(known))}")
    return opts


def connect_address(addr: Address, *, timeout: float | None = None, **kw: Any) -> ShmChannel:
    opts = _options(addr, kw)
    opts.pop("mode", None)
    return connect(addr.name, timeout=timeout, **opts)


def listen_address(addr: Address, **kw: Any) -> ShmListener:
    return ShmListener(addr.name, **_options(addr, kw))


# -- interproc ls / gc ----------------------------------------------------------

def _chan_details(buf: memoryview) -> dict:
    magic, _version, cap, flags, _ = _CTRL.unpack_from(buf, 0)
    if magic != CHAN_MAGIC:
        return {"error": "bad magic"}
    a, b = _read_ident(buf, OFF_SIDE[0]), _read_ident(buf, OFF_SIDE[1])
    closed = struct.unpack_from("<II", buf, OFF_CLOSED)
    queued = []
    for ring in OFF_RINGS:
        head = struct.unpack_from("<Q", buf, ring + RING_HEAD)[0]
        tail = struct.unpack_from("<Q", buf, ring + RING_TAIL)[0]
        queued.append(head - tail if head >= tail else -1)
    return {"capacity": cap, "accepted": bool(flags & F_ACCEPTED),
            "server_pid": a.pid, "client_pid": b.pid,
            "server": "closed" if closed[0] else ("alive" if is_alive(a) else "dead"),
            "client": "closed" if closed[1] else ("alive" if is_alive(b) else "dead"),
            "queued_to_client": queued[0], "queued_to_server": queued[1]}


def _listener_details(buf: memoryview) -> dict:
    owner = _read_ident(buf, OFF_LOWNER)
    cap = struct.unpack_from("<Q", buf, OFF_LCAP)[0]
    waiting = sum(1 for i in range(BACKLOG) if struct.unpack_from("<Q", buf, OFF_BACKLOG + 8 * i)[0])
    return {"listener_pid": owner.pid, "capacity": cap, "connections": struct.unpack_from("<Q", buf, OFF_NEXT)[0],
            "backlog": waiting, "closed": bool(struct.unpack_from("<I", buf, OFF_LCLOSED)[0])}


def _queued_at_listener(name: str, scope: Scope) -> bool:
    """True if connection segment ``name`` waits in the backlog of an open, live listener."""
    lname, _, suffix = name.rpartition(".")
    try:
        conn = int(suffix, 36)
        lseg = _ListenSegment.open(lname, scope=scope, timeout=1.0)
    except (ValueError, InterprocError, OSError):
        return False
    try:
        buf = lseg.buf
        if _native.atomic_load(buf, OFF_LCLOSED, **_U32) or not is_alive(_read_ident(buf, OFF_LOWNER)):
            return False
        return any(_native.atomic_load(buf, OFF_BACKLOG + 8 * i, **_U64) == conn + 1 for i in range(BACKLOG))
    finally:
        lseg.close()


def _collect_orphans() -> list:
    """Connections never accepted that nobody will accept: persistent until
    accepted, so segment gc alone would keep them.  That is the case once the
    client is gone and either the listener is gone or closed, or the
    connection never reached its backlog (the client died in between)."""
    from .._shm import STATE_PERSISTENT, list_segments

    removed = []
    for info in list_segments():
        if info.kind != "chan" or info.state != STATE_PERSISTENT or info.details.get("accepted", True):
            continue
        if info.details.get("client") == "alive":
            continue
        if _queued_at_listener(info.name, info.scope):  # type: ignore[arg-type]
            continue  # a dead client's messages still wait to be accepted
        try:
            seg = _ChanSegment.open(info.name, scope=info.scope)  # type: ignore[arg-type]
        except (NotFound, ProtocolError, PermissionDenied):
            continue
        _make_ephemeral(seg)
        seg.close()  # the last handle: the name goes
        removed.append(info)
    return removed


register_details("chan", _chan_details)
register_details("chanlisten", _listener_details)
register("shmchannels", lambda: [], _collect_orphans)
