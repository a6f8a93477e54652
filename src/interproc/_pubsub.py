"""Publish/subscribe over one shared-memory segment: one publisher, many subscribers.

Segment layout (the user area of a ``pub`` segment, little-endian)::

    0     magic "IPPUBSUB", version u32, max_subscribers u32,
          slot_size u64, slots u32, history u32
    64    published i64   samples published so far; its low 32 bits are the
                          futex word subscribers sleep on
    72    sub_waiters i64
    80    closed u32
    88    publisher pid u32, pad, start u64
    104   table_hwm u32   entries ever claimed (scans stop there)
    128   space u32       futex word the publisher sleeps on
    136   pub_waiting i64
    144   table_gen i64   bumped whenever a subscriber joins or leaves
    192   subscriber table: max_subscribers x 64-byte entries
              word i64 (state | ticket << 8), pid u32, policy u32, start u64,
              read_seq i64 (oldest sample not yet released), dropped i64,
              received i64
    ...   slots x (64-byte slot header: seq i64, length i64; then slot_size
          bytes rounded up to 64)

Hot-path fields are signed 64-bit so the native atomics are called with
their defaults (keyword arguments cost more than the atomic itself).

Sample ``n`` lives in slot ``n % slots``.  Writing sample ``s`` overwrites
sample ``s - slots``, so the publisher first waits until every *block*
subscriber has released it (``read_seq > s - slots``); *drop_oldest*
subscribers are never waited for.  They copy a sample out under a seqlock
(the slot's ``seq`` is set to WRITING while the publisher fills it and
checked again after the copy), so a sample overwritten under their feet is
counted as dropped, never returned torn.  Block subscribers get zero-copy,
read-only views straight into the slot.

Why the joins are safe without a lock on the hot path: a joining subscriber
marks its entry ACTIVE, bumps ``table_gen`` and then reads ``published``;
the publisher stores ``published`` and then reads ``table_gen`` before every
loan.  All of these are sequentially consistent atomics, so (Dekker) either
the publisher sees the new entry, or the subscriber sees the newer count and
moves its start past the slot being overwritten.

Nothing read from the segment is trusted: the geometry is validated once at
open and kept in Python, lengths and sequence numbers read later are checked
against it, and anything inconsistent raises ``ProtocolError``.
"""

from __future__ import annotations

import struct
import time
import weakref
from typing import Any

from . import _native
from ._errors import AlreadyExists, ChannelClosed, InterprocError, MessageTooLarge, NotFound, ProtocolError, Timeout
from ._naming import Scope
from ._platform import ProcessId, current_process, is_alive
from ._shm import SharedMemory, register_details

MAGIC = b"IPPUBSUB"
VERSION = 1
_GEOM = struct.Struct("<8sIIQII")  # magic, version, max_subs, slot_size, slots, history

OFF_PUBLISHED = 64
OFF_SUB_WAITERS = 72
OFF_CLOSED = 80
OFF_PUB_PID = 88
OFF_HWM = 104
OFF_SPACE = 128
OFF_PUB_WAITING = 136
OFF_GEN = 144
OFF_TABLE = 192
ENTRY = 64
E_WORD, E_PID, E_POLICY, E_START, E_READ, E_DROPPED, E_RECEIVED = 0, 8, 12, 16, 24, 32, 40
SLOT_HEADER = 64
WRITING = -1  # a slot's seq while the publisher fills it

FREE, CLAIMING, ACTIVE = 0, 1, 2
BLOCK, DROP_OLDEST = 0, 1
POLICIES = {"block": BLOCK, "drop_oldest": DROP_OLDEST}

DEFAULT_MAX_SUBSCRIBERS = 32
MAX_SUBSCRIBERS = 1024
MAX_SLOT_SIZE = 1 << 30
MAX_SLOTS = 1 << 20
#: How long a waiter spins before it sleeps on the futex.  Waking a sleeping
#: process on the other CPU costs ~40-80 us on small VMs, so a spin of this
#: order buys latency for a prompt peer and costs nothing measurable otherwise.
DEFAULT_SPIN = 100e-6
#: Sleep in slices this long so that a dead peer is noticed (pid + start time).
SLICE = 0.05

_U32 = {"size": 4, "signed": False}

_load = _native.atomic_load
_store = _native.atomic_store
_add = _native.atomic_add
_cas = _native.atomic_compare_exchange
_wait = _native.futex_wait
_wake = _native.futex_wake
_c_publish = _native.pubsub_publish
_c_spin = _native.pubsub_spin
_c_slot = _native.pubsub_slot
_c_release = _native.pubsub_release
_now = time.monotonic


def _round64(n: int) -> int:
    return (n + 63) & ~63


def _int_arg(value: object, what: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{what} must be {low}..{high}, got {value}")
    return value


def _check_timeout(timeout: float | None) -> float | None:
    if timeout is None:
        return None
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout != timeout or timeout < 0:
        raise ValueError(f"timeout must be None or >= 0 seconds, not {timeout!r}")
    return _now() + timeout


def _check_spin(spin: float) -> float:
    if not isinstance(spin, (int, float)) or isinstance(spin, bool) or not 0 <= spin <= 1:
        raise ValueError(f"spin must be 0..1 seconds, got {spin!r}")
    return float(spin)


class _Geometry:
    """Sizes and offsets, validated once; never re-read from the segment."""

    def __init__(self, max_subs: int, slot_size: int, slots: int, history: int) -> None:
        self.max_subs, self.slot_size, self.slots, self.history = max_subs, slot_size, slots, history
        self.stride = SLOT_HEADER + _round64(slot_size)
        self.slots_off = _round64(OFF_TABLE + max_subs * ENTRY)
        self.size = self.slots_off + slots * self.stride

    def slot(self, seq: int) -> int:
        return self.slots_off + (seq % self.slots) * self.stride

    @classmethod
    def read(cls, buf: memoryview, what: str) -> "_Geometry":
        if len(buf) < OFF_TABLE:
            raise ProtocolError(f"{what} is too small ({len(buf)} bytes) to be a publisher")
        magic, version, max_subs, slot_size, slots, history = _GEOM.unpack_from(buf, 0)
        if magic != MAGIC:
            raise ProtocolError(f"{what} is not a publisher segment (magic {magic!r})")
        if version != VERSION:
            raise ProtocolError(f"{what} has publisher layout version {version}; expected {VERSION}")
        if not (1 <= max_subs <= MAX_SUBSCRIBERS and 1 <= slot_size <= MAX_SLOT_SIZE
                and 2 <= slots <= MAX_SLOTS and 0 <= history < slots):
            raise ProtocolError(f"{what} has a corrupted header (max_subscribers={max_subs}, "
                                f"slot_size={slot_size}, slots={slots}, history={history})")
        geo = cls(max_subs, slot_size, slots, history)
        if geo.size > len(buf):
            raise ProtocolError(f"{what} needs {geo.size} bytes for its slots but the segment has {len(buf)}")
        return geo


class _PubSegment(SharedMemory):
    KIND = "pub"


# -- publisher --------------------------------------------------------------

class Loan:
    """A slot lent to the caller: ``buf`` is writable memory inside the slot.

    ``with pub.loan(n) as buf: ...`` publishes the ``n`` bytes on a normal
    exit and discards the loan if the block raises.  Without ``with``, call
    ``publish()`` or ``discard()``.  ``buf`` (and any numpy array laid over
    it) must not be used after that.
    """

    __slots__ = ("_pub", "_seq", "_n", "buf")

    def __init__(self, pub: "Publisher", seq: int, n: int, buf: memoryview) -> None:
        self._pub, self._seq, self._n, self.buf = pub, seq, n, buf

    def publish(self, length: int | None = None) -> None:
        """Publish the sample (``length`` bytes, default all the loan's bytes)."""
        n = self._n if length is None else _int_arg(length, "length", 0, self._n)
        self._finish()
        self._pub._publish(self._seq, n)

    def discard(self) -> None:
        """Give the slot back without publishing anything."""
        self._finish()
        self._pub._loaned = False

    def _finish(self) -> None:
        if self._pub is None or not self._pub._loaned:
            raise ValueError("this loan was already published or discarded")
        try:
            self.buf.release()
        except BufferError:
            pass  # an array over it still exists; the caller was told not to use it

    def __enter__(self) -> memoryview:
        return self.buf

    def __exit__(self, exc_type: Any, *_: object) -> None:
        if exc_type is None:
            self.publish()
        elif self._pub._loaned:
            self.discard()


class Publisher:
    """The sending side: ``Publisher.create(name, slot_size, slots, history=N)``.

    ``send(data)`` copies a sample in; ``loan(n)`` lends a slot for zero-copy
    writing.  Both wait (up to ``timeout``) while a *block* subscriber still
    holds the slot they need; *drop_oldest* subscribers never make them wait.
    """

    def __init__(self, *_: Any, **__: Any) -> None:
        raise TypeError("use Publisher.create()")

    @classmethod
    def create(cls, name: str, slot_size: int, slots: int, *, history: int = 0,
               max_subscribers: int = DEFAULT_MAX_SUBSCRIBERS, scope: Scope = "user",
               mode: int | None = None, spin: float = DEFAULT_SPIN) -> "Publisher":
        """Create the publisher ``name``; ``AlreadyExists`` if the name is taken.

        ``slots`` samples of up to ``slot_size`` bytes live in the segment;
        late joiners get the last ``history`` of them (``history < slots``:
        one slot is always the one being written).
        """
        slot_size = _int_arg(slot_size, "slot_size", 1, MAX_SLOT_SIZE)
        slots = _int_arg(slots, "slots", 2, MAX_SLOTS)
        max_subscribers = _int_arg(max_subscribers, "max_subscribers", 1, MAX_SUBSCRIBERS)
        history = _int_arg(history, "history", 0, slots - 1)
        spin = _check_spin(spin)
        geo = _Geometry(max_subscribers, slot_size, slots, history)
        me = current_process()

        def init(buf: memoryview) -> None:
            _GEOM.pack_into(buf, 0, MAGIC, VERSION, max_subscribers, slot_size, slots, history)
            struct.pack_into("<I4xQ", buf, OFF_PUB_PID, me.pid, me.start)
            for i in range(slots):
                _store(buf, geo.slot(i), WRITING)

        seg = _PubSegment.create_or_open(name, geo.size, init=init, scope=scope, mode=mode)
        if not seg.created:
            seg.close()
            raise AlreadyExists(f"publisher {name!r} already exists")
        self = object.__new__(cls)
        self.name, self._seg, self._buf, self._geo, self._spin = name, seg, seg.buf, geo, spin
        self._seq = 0
        self._loaned = False
        self._gen = -1
        self._min_read = 0
        self._finalizer = weakref.finalize(self, _close_publisher, seg, self._buf)
        return self

    # -- properties ------------------------------------------------------
    slot_size = property(lambda self: self._geo.slot_size)
    slots = property(lambda self: self._geo.slots)
    history = property(lambda self: self._geo.history)
    max_subscribers = property(lambda self: self._geo.max_subs)

    @property
    def published(self) -> int:
        """Samples published so far."""
        return self._seq

    @property
    def subscribers(self) -> int:
        """Live subscribers right now."""
        self._check_open()
        return len(_live_entries(self._buf, self._geo))

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError(f"publisher {self.name!r} is closed")

    # -- sending -----------------------------------------------------------
    def loan(self, n: int | None = None, *, timeout: float | None = None) -> Loan:
        """Lend the next slot: ``n`` bytes (default ``slot_size``) of writable memory."""
        self._check_open()
        deadline = _check_timeout(timeout)
        geo = self._geo
        n = geo.slot_size if n is None else n
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"loan size must be an int >= 0, got {n!r}")
        if n > geo.slot_size:
            raise MessageTooLarge(f"publisher {self.name!r}: {n} bytes do not fit a {geo.slot_size}-byte slot")
        if self._loaned:
            raise ValueError(f"publisher {self.name!r} already has a loan out; publish or discard it first")
        seq = self._seq
        self._wait_for_room(seq, deadline)
        buf = self._buf
        off = geo.slot(seq)
        # Mark the slot before touching its bytes: a drop_oldest reader that
        # copied the old sample sees the mark change and discards its copy.
        _store(buf, off, WRITING)
        self._loaned = True
        return Loan(self, seq, n, buf[off + SLOT_HEADER: off + SLOT_HEADER + n])

    def send(self, data: Any, *, timeout: float | None = None) -> None:
        """Publish a copy of ``data`` (any bytes-like object)."""
        mv = memoryview(data)
        if not mv.c_contiguous:
            raise ValueError("send() needs a contiguous buffer")
        mv = mv.cast("B") if mv.format != "B" or mv.ndim != 1 else mv
        # loan() + publish() without the Loan object: the same steps, inline.
        self._check_open()
        deadline = _check_timeout(timeout)
        n, geo = mv.nbytes, self._geo
        if n > geo.slot_size:
            raise MessageTooLarge(f"publisher {self.name!r}: {n} bytes do not fit a {geo.slot_size}-byte slot")
        if self._loaned:
            raise ValueError(f"publisher {self.name!r} already has a loan out; publish or discard it first")
        seq = self._seq
        self._wait_for_room(seq, deadline)
        buf, off = self._buf, geo.slot(seq)
        _store(buf, off, WRITING)
        start = off + SLOT_HEADER
        buf[start: start + n] = mv
        self._publish(seq, n)

    def _publish(self, seq: int, n: int) -> None:
        _c_publish(self._buf, self._geo.slot(seq), seq, n, OFF_PUBLISHED, OFF_SUB_WAITERS)
        self._seq = seq + 1
        self._loaned = False

    def _wait_for_room(self, seq: int, deadline: float | None) -> None:
        """Wait until no block subscriber still needs sample ``seq - slots``."""
        need = seq - self._geo.slots + 1  # every block reader must have read_seq >= need
        buf = self._buf
        gen = _load(buf, OFF_GEN)
        if gen == self._gen and self._min_read >= need:
            return
        self._gen = gen
        self._min_read = self._scan(seq)
        if self._min_read >= need:
            return
        spin_until = last_reap = _now()
        spin_until += self._spin
        while _now() < spin_until:
            self._min_read = self._scan(seq)
            if self._min_read >= need:
                return
        while True:
            _add(buf, OFF_PUB_WAITING, 1)
            try:
                space = _load(buf, OFF_SPACE, **_U32)
                self._gen = _load(buf, OFF_GEN)
                self._min_read = self._scan(seq)
                if self._min_read >= need:
                    return
                wait = SLICE
                if deadline is not None:
                    wait = min(wait, deadline - _now())
                    if wait <= 0:
                        if _reap_dead(buf, self._geo):
                            continue  # it was a dead one: look again
                        raise Timeout(f"publisher {self.name!r}: a subscriber has not released its samples "
                                      f"(all {self._geo.slots} slots are in use)")
                _wait(buf, OFF_SPACE, space, wait)
            finally:
                _add(buf, OFF_PUB_WAITING, -1)
            # By the clock, not by timed-out waits: releases by live
            # subscribers may keep waking us while a dead one holds us back.
            if _now() - last_reap >= SLICE:
                _reap_dead(buf, self._geo)
                last_reap = _now()

    def _scan(self, seq: int) -> int:
        """The oldest sample a live block subscriber still needs (``seq`` if none)."""
        buf, geo = self._buf, self._geo
        low = seq
        hwm = min(_load(buf, OFF_HWM, **_U32), geo.max_subs)
        for i in range(hwm):
            e = OFF_TABLE + i * ENTRY
            word = _load(buf, e + E_WORD)
            state = word & 0xFF
            if state == ACTIVE:
                if _load(buf, e + E_POLICY, **_U32) != BLOCK:
                    continue
                r = _load(buf, e + E_READ)
                if not 0 <= r <= seq:
                    raise ProtocolError(f"publisher {self.name!r}: subscriber entry {i} claims to have read "
                                        f"sample {r} of {seq}; the segment is corrupted")
                low = min(low, r)
            elif state not in (FREE, CLAIMING):
                raise ProtocolError(f"publisher {self.name!r}: subscriber entry {i} has state {state}; "
                                    "the segment is corrupted")
        return low

    def close(self) -> None:
        """Stop publishing: subscribers get what is queued, then ``ChannelClosed``."""
        self._finalizer()

    def __enter__(self) -> "Publisher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.closed:
            return f"<Publisher {self.name!r} closed>"
        return f"<Publisher {self.name!r} slots={self.slots}x{self.slot_size} published={self._seq}>"


def _close_publisher(seg: SharedMemory, buf: memoryview) -> None:
    try:
        _store(buf, OFF_CLOSED, 1, **_U32)
        _wake(buf, OFF_PUBLISHED)
    finally:
        seg.close()


# -- subscriber table ----------------------------------------------------------

def _entries(buf: memoryview, geo: _Geometry):
    hwm = min(_load(buf, OFF_HWM, **_U32), geo.max_subs)
    for i in range(hwm):
        e = OFF_TABLE + i * ENTRY
        yield e, _load(buf, e + E_WORD)


def _ident(buf: memoryview, e: int) -> ProcessId:
    return ProcessId(_load(buf, e + E_PID, **_U32), _load(buf, e + E_START))


def _live_entries(buf: memoryview, geo: _Geometry) -> list[int]:
    return [e for e, word in _entries(buf, geo) if word & 0xFF == ACTIVE and is_alive(_ident(buf, e))]


def _reap_dead(buf: memoryview, geo: _Geometry) -> int:
    """Free the entries of dead subscribers; returns how many."""
    freed = 0
    for e, word in _entries(buf, geo):
        if word & 0xFF == ACTIVE and not is_alive(_ident(buf, e)):
            # CAS on the whole word (ticket included): if the entry was freed
            # and claimed again meanwhile, the new owner keeps it.
            if _cas(buf, e + E_WORD, word, word & ~0xFF | FREE)[0]:
                _add(buf, OFF_GEN, 1)
                freed += 1
    return freed


# -- subscriber -------------------------------------------------------------

class Sample:
    """A received sample: ``buf`` is a read-only memoryview, valid until released.

    Use it as a context manager or call ``release()``; for *block*
    subscribers the publisher cannot reuse the slot until then.
    """

    __slots__ = ("seq", "buf", "_sub")

    def __init__(self, sub: "Subscriber", seq: int, buf: memoryview) -> None:
        self._sub, self.seq, self.buf = sub, seq, buf

    def release(self) -> None:
        sub = self._sub
        if sub is None:
            return
        self._sub = None
        try:
            self.buf.release()
        except BufferError:
            pass  # an array over it is still alive; documented as invalid now
        sub._release(self.seq)

    @property
    def released(self) -> bool:
        return self._sub is None

    def tobytes(self) -> bytes:
        return self.buf.tobytes()

    def __bytes__(self) -> bytes:
        return self.buf.tobytes()

    def __len__(self) -> int:
        return self.buf.nbytes

    def __getitem__(self, index: Any) -> Any:
        return self.buf[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (bytes, bytearray, memoryview)):
            return self.buf == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __enter__(self) -> "Sample":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "released" if self._sub is None else f"{self.buf.nbytes} bytes"
        return f"<Sample #{self.seq} {state}>"


class Subscriber:
    """The receiving side: ``Subscriber.open(name, policy="block")``.

    ``policy="block"`` (default): the publisher waits for this subscriber,
    nothing is lost, samples are zero-copy views.  ``policy="drop_oldest"``:
    the publisher never waits; when it laps this subscriber the oldest
    samples are skipped and counted in ``dropped``; samples are copies.
    """

    def __init__(self, *_: Any, **__: Any) -> None:
        raise TypeError("use Subscriber.open()")

    @classmethod
    def open(cls, name: str, *, policy: str = "block", timeout: float | None = None,
             scope: Scope = "user", spin: float = DEFAULT_SPIN) -> "Subscriber":
        """Subscribe to publisher ``name``.

        ``NotFound`` at once when there is none, unless ``timeout`` is given:
        then wait that long for it to appear.
        """
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(map(repr, POLICIES))}, not {policy!r}")
        spin = _check_spin(spin)
        deadline = _check_timeout(timeout)
        while True:
            try:
                seg = _PubSegment.open(name, scope=scope, timeout=None if deadline is None else max(0.0, deadline - _now()))
                break
            except NotFound:
                if deadline is None or _now() >= deadline:
                    raise NotFound(f"no publisher {name!r}") from None
                time.sleep(0.01)
        try:
            buf = seg.buf
            geo = _Geometry.read(buf, f"publisher {name!r}")
            self = object.__new__(cls)
            self.name, self.policy, self._seg, self._buf, self._geo, self._spin = name, policy, seg, buf, geo, spin
            self._policy = POLICIES[policy]
            self._pub = ProcessId(*struct.unpack_from("<I4xQ", buf, OFF_PUB_PID))
            self._held: set[int] = set()
            self._dropped = 0
            self._received = 0
            self._entry = self._join()
        except BaseException:
            seg.close()
            raise
        self._finalizer = weakref.finalize(self, _leave, seg, buf, self._entry)
        return self

    def _join(self) -> int:
        buf, geo = self._buf, self._geo
        me = current_process()
        for attempt in range(2):
            for i in range(geo.max_subs):
                e = OFF_TABLE + i * ENTRY
                word = _load(buf, e + E_WORD)
                if word & 0xFF != FREE:
                    continue
                claimed = ((word >> 8) + 1) << 8 | CLAIMING
                if not _cas(buf, e + E_WORD, word, claimed)[0]:
                    continue
                # Raise the high-water mark so scans include this entry.
                while True:
                    hwm = _load(buf, OFF_HWM, **_U32)
                    if hwm > i or _cas(buf, OFF_HWM, hwm, i + 1, **_U32)[0]:
                        break
                struct.pack_into("<II", buf, e + E_PID, me.pid, self._policy)
                struct.pack_into("<QQQQ", buf, e + E_START, me.start, 0, 0, 0)
                first = _load(buf, OFF_PUBLISHED)
                _store(buf, e + E_READ, max(0, first - geo.history))
                _store(buf, e + E_WORD, claimed & ~0xFF | ACTIVE)
                _add(buf, OFF_GEN, 1)
                # Samples published meanwhile may have overwritten the oldest
                # history; start no earlier than the oldest slot not in reuse.
                now = _load(buf, OFF_PUBLISHED)
                start = max(0, first - geo.history, now - (geo.slots - 1))
                _store(buf, e + E_READ, start)
                self._cursor = start
                self._wake_publisher()
                return e
            if attempt == 0 and not _reap_dead(buf, geo):
                break
        raise InterprocError(f"publisher {self.name!r} already has {geo.max_subs} subscribers, "
                             "its max_subscribers")

    # -- properties ----------------------------------------------------------
    @property
    def dropped(self) -> int:
        """Samples this (drop_oldest) subscriber missed because the publisher lapped it."""
        return self._dropped

    @property
    def received(self) -> int:
        return self._received

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError(f"subscriber of {self.name!r} is closed")

    # -- receiving ---------------------------------------------------------------
    def recv(self, *, timeout: float | None = None) -> Sample:
        """The next sample; ``Timeout`` if none comes in time, ``ChannelClosed``
        once the publisher has gone and everything it published was received."""
        self._check_open()
        deadline = _check_timeout(timeout)
        buf = self._buf
        while True:
            r = self._cursor
            published = _load(buf, OFF_PUBLISHED)
            if published <= r:
                self._wait_for_data(r, deadline)
                continue
            if self._policy == BLOCK:
                return self._take(r, published)
            sample = self._copy(r, published)
            if sample is not None:
                return sample

    def recv_bytes(self, *, timeout: float | None = None) -> bytes:
        """The next sample as bytes (a copy; the slot is released at once)."""
        with self.recv(timeout=timeout) as s:
            return s.tobytes()

    def _bad_length(self, n: int) -> None:
        raise ProtocolError(f"publisher {self.name!r}: a sample claims {n} bytes in a "
                            f"{self._geo.slot_size}-byte slot; the segment is corrupted")

    def _take(self, r: int, published: int) -> Sample:
        """Block policy: the slot is ours until released; hand out a view."""
        buf, geo = self._buf, self._geo
        off = geo.slot(r)
        seq, n = _c_slot(buf, off)
        if seq != r or published - r > geo.slots:
            raise ProtocolError(f"publisher {self.name!r}: expected sample {r} in its slot, found "
                                f"{'none' if seq == WRITING else seq} (published {published}); "
                                "the segment is corrupted")
        if not 0 <= n <= geo.slot_size:
            self._bad_length(n)
        self._cursor = r + 1
        self._held.add(r)
        self._received += 1
        start = off + SLOT_HEADER
        return Sample(self, r, buf[start: start + n].toreadonly())

    def _copy(self, r: int, published: int) -> Sample | None:
        """drop_oldest: copy the sample out under the seqlock; None to retry."""
        buf, geo = self._buf, self._geo
        oldest = published - (geo.slots - 1)  # the slot of `published` may be in reuse
        if r < oldest:
            self._dropped += oldest - r
            r = self._cursor = oldest
            _store(buf, self._entry + E_DROPPED, self._dropped)
        off = geo.slot(r)
        seq, n = _c_slot(buf, off)
        if seq != r:
            if seq == WRITING or (seq > r and (seq - r) % geo.slots == 0):
                return None  # overwritten since we read `published`: look again
            raise ProtocolError(f"publisher {self.name!r}: slot of sample {r} holds sample {seq}; "
                                "the segment is corrupted")
        if not 0 <= n <= geo.slot_size:
            self._bad_length(n)
        start = off + SLOT_HEADER
        data = buf[start: start + n].tobytes()
        # The sequentially consistent load orders the copy before it: if the
        # seq is unchanged, the publisher did not touch the slot meanwhile.
        if _load(buf, off) != r:
            return None
        self._cursor = r + 1
        self._received += 1
        _store(buf, self._entry + E_READ, r + 1)
        return Sample(self, r, memoryview(data))

    def _release(self, seq: int) -> None:
        if self._policy != BLOCK or self.closed:
            return
        held = self._held
        held.discard(seq)
        _c_release(self._buf, self._entry + E_READ, min(held) if held else self._cursor,
                   OFF_PUB_WAITING, OFF_SPACE)

    def _wake_publisher(self) -> None:
        buf = self._buf
        if _load(buf, OFF_PUB_WAITING):
            _add(buf, OFF_SPACE, 1, **_U32)
            _wake(buf, OFF_SPACE)

    def _wait_for_data(self, r: int, deadline: float | None) -> None:
        """Return once ``published > r`` may hold; raise ChannelClosed/Timeout."""
        buf = self._buf
        if _c_spin(buf, OFF_PUBLISHED, r, self._spin) > r:
            return
        while True:
            _add(buf, OFF_SUB_WAITERS, 1)
            try:
                published = _load(buf, OFF_PUBLISHED)
                if published > r:
                    return
                if _load(buf, OFF_CLOSED, **_U32):
                    raise ChannelClosed(f"publisher {self.name!r} has closed")
                wait = SLICE
                if deadline is not None:
                    wait = min(wait, deadline - _now())
                    if wait <= 0:
                        raise Timeout(f"no sample from publisher {self.name!r} in time")
                woken = _wait(buf, OFF_PUBLISHED, published & 0xFFFFFFFF, wait)
            finally:
                _add(buf, OFF_SUB_WAITERS, -1)
            if not woken and not is_alive(self._pub):
                if _load(buf, OFF_PUBLISHED) > r:
                    return
                raise ChannelClosed(f"publisher {self.name!r} (pid {self._pub.pid}) died")

    def __iter__(self):
        """Yield samples (bytes) until the publisher closes."""
        while True:
            try:
                yield self.recv_bytes()
            except ChannelClosed:
                return

    def close(self) -> None:
        """Leave: the publisher stops waiting for this subscriber."""
        self._finalizer()

    def __enter__(self) -> "Subscriber":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.closed:
            return f"<Subscriber {self.name!r} closed>"
        return f"<Subscriber {self.name!r} policy={self.policy} received={self._received} dropped={self._dropped}>"


def _leave(seg: SharedMemory, buf: memoryview, entry: int) -> None:
    try:
        word = _load(buf, entry + E_WORD)
        if word & 0xFF == ACTIVE and _load(buf, entry + E_PID, **_U32) == current_process().pid:
            _store(buf, entry + E_WORD, word & ~0xFF | FREE)
            _add(buf, OFF_GEN, 1)
            if _load(buf, OFF_PUB_WAITING):
                _add(buf, OFF_SPACE, 1, **_U32)
                _wake(buf, OFF_SPACE)
    finally:
        seg.close()


# -- interproc ls -------------------------------------------------------------

def _details(buf: memoryview) -> dict:
    geo = _Geometry.read(buf, "publisher")
    pub = ProcessId(*struct.unpack_from("<I4xQ", buf, OFF_PUB_PID))
    if _load(buf, OFF_CLOSED, **_U32):
        state = "closed"
    else:
        state = "alive" if is_alive(pub) else "dead"
    return {
        "publisher": state,
        "subscribers": len(_live_entries(buf, geo)),
        "published": _load(buf, OFF_PUBLISHED),
        "slots": geo.slots,
        "slot_size": geo.slot_size,
        "history": geo.history,
    }


register_details("pub", _details)
