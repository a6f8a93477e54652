"""The publishing side: ``Publisher`` and the ``Loan`` of a slot."""

from __future__ import annotations

import struct
from typing import Any

from .._errors import AlreadyExists, HandleClosed, ProtocolError, Timeout
from .._lifecycle import finalizer, run_quietly
from .._naming import Scope
from .._platform import current_process
from .._shm import SharedMemory
from ._layout import (
    ACTIVE, BLOCK, CLAIMING, DEFAULT_MAX_SUBSCRIBERS, DEFAULT_SPIN, E_POLICY, E_READ, E_WORD, ENTRY, FREE,
    MAGIC, MAX_SLOT_SIZE, MAX_SLOTS, MAX_SUBSCRIBERS, OFF_HWM, OFF_PUB_PID, OFF_PUB_WAITING, OFF_SPACE,
    OFF_TABLE, SLICE, SLOT_HEADER, VERSION, WRITING, _GEOM, _U32, _add, _check_spin, _Geometry, _int_arg,
    _live_entries, _load, _now, _PubSegment, _reap_dead, _store, _wait, PubSubCore, _heavy_fence,
)
from ._lend import lend, take_back

class Loan:
    """A slot lent to the caller: ``buf`` is writable memory inside the slot.

    ``with pub.loan(n) as buf: ...`` publishes the ``n`` bytes on a normal
    exit and discards the loan if the block raises.  Without ``with``, call
    ``publish()`` or ``discard()``.  ``buf`` is released then, so it cannot
    be written into a published slot.  A numpy array (or any other export)
    over ``buf`` must be gone by then (``del frame``): otherwise ``publish()``
    raises ``BufferError`` and publishes nothing (the loan stays out, so
    ``publish()`` can be called again once the array is gone), and the end of
    a ``with`` block raises ``BufferError`` and discards the loan.
    """

    __slots__ = ("_pub", "_seq", "_n", "buf", "_exporter")

    def __init__(self, pub: "Publisher", seq: int, n: int, segment: memoryview, start: int) -> None:
        self._pub, self._seq, self._n = pub, seq, n
        self._exporter, self.buf = lend(segment, start, n, readonly=False)

    def publish(self, length: int | None = None) -> None:
        """Publish the sample (``length`` bytes, default all the loan's bytes)."""
        n = self._n if length is None else _int_arg(length, "length", 0, self._n)
        self._finish()
        self._pub._core.publish(self._seq, n)

    def discard(self) -> None:
        """Give the slot back without publishing anything."""
        self._finish()
        self._pub._core.discard()

    def _finish(self) -> None:
        if self._pub is None or not self._pub._loaned:
            raise ValueError("this loan was already published or discarded")
        if not take_back(self._exporter, self.buf):
            # A live array could still write into the slot after subscribers
            # read it: refuse rather than publish a sample that can change.
            raise BufferError(
                "the loan's buf is still exported (a numpy array or other view over it is alive): "
                "nothing was published; delete the view (del frame) before the loan ends") from None

    def __enter__(self) -> memoryview:
        return self.buf

    def __exit__(self, exc_type: Any, *_: object) -> None:
        if exc_type is None:
            try:
                self.publish()
            except BufferError:
                self._pub._core.discard()  # the with-form cannot retry: give the slot back
                raise
        elif self._pub._loaned:
            try:
                self.discard()
            except BufferError:
                self._pub._core.discard()


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
        try:
            core = PubSubCore(seg.buf, True, max_subscribers, slot_size, slots, history, spin,
                              _room_waiter(seg.buf, geo, name))
        except BaseException:
            seg.close()
            raise
        self._core = core
        # The hot path: the C method itself, no Python frame in between.
        self.send = core.send  # type: ignore[method-assign]
        self._finalizer = finalizer(self, _close_publisher, core, seg, what=f"Publisher {name!r}")
        return self

    # -- properties ------------------------------------------------------
    slot_size = property(lambda self: self._geo.slot_size)
    slots = property(lambda self: self._geo.slots)
    history = property(lambda self: self._geo.history)
    max_subscribers = property(lambda self: self._geo.max_subs)

    @property
    def published(self) -> int:
        """Samples published so far."""
        return self._core.seq

    @property
    def core(self) -> PubSubCore:
        """The C core (src/native/pubsub_core.c) that the blocking and the
        asyncio drivers both call: ``send``, ``arm``/``disarm``, the doorbell."""
        return self._core

    @property
    def _loaned(self) -> bool:
        return self._core.loaned

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
            raise HandleClosed(f"publisher {self.name!r} is closed")

    # -- sending -----------------------------------------------------------
    def loan(self, n: int | None = None, *, timeout: float | None = None) -> Loan:
        """Lend the next slot: ``n`` bytes (default ``slot_size``) of writable memory."""
        self._check_open()
        n = self._geo.slot_size if n is None else n
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"loan size must be an int >= 0, got {n!r}")
        seq, off = self._core.claim(n, timeout)
        return Loan(self, seq, n, self._buf, off + SLOT_HEADER)

    def send(self, data: Any, *, timeout: float | None = None) -> None:  # replaced per instance
        """Publish a copy of ``data`` (any contiguous bytes-like object)."""
        self._core.send(data, timeout=timeout)

    def close(self) -> None:
        """Stop publishing: subscribers get what is queued, then ``ChannelClosed``."""
        run_quietly(self._finalizer)

    def __enter__(self) -> "Publisher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.closed:
            return f"<Publisher {self.name!r} closed>"
        return f"<Publisher {self.name!r} slots={self.slots}x{self.slot_size} published={self.published}>"


def _room_waiter(buf: memoryview, geo: _Geometry, name: str):
    """The publisher's slow path, called by the C core after its spin: sleep
    until no block subscriber still needs the slot of sample ``seq`` (reaping
    dead subscribers on the way); ``Timeout`` after ``timeout`` seconds.  A
    closure over the segment, not the Publisher, so no reference cycle."""
    slots = geo.slots

    def wait(seq: int, timeout: float | None) -> None:
        need = seq - slots + 1
        if timeout is not None and timeout <= 0:  # a poll (asyncio): no sleeper handshake
            if _scan(buf, geo, name, seq) >= need or (_reap_dead(buf, geo) and _scan(buf, geo, name, seq) >= need):
                return
            raise Timeout(f"publisher {name!r}: a subscriber has not released its samples "
                          f"(all {slots} slots are in use)")
        deadline = None if timeout is None else _now() + timeout
        last_reap = _now()
        while True:
            _add(buf, OFF_PUB_WAITING, 1)
            try:
                _heavy_fence()  # subscribers release without a full fence
                space = _load(buf, OFF_SPACE, **_U32)
                if _scan(buf, geo, name, seq) >= need:
                    return
                wait = SLICE
                if deadline is not None:
                    wait = min(wait, deadline - _now())
                    if wait <= 0:
                        if _reap_dead(buf, geo):
                            continue  # it was a dead one: look again
                        raise Timeout(f"publisher {name!r}: a subscriber has not released its samples "
                                      f"(all {slots} slots are in use)")
                _wait(buf, OFF_SPACE, space, wait)
            finally:
                _add(buf, OFF_PUB_WAITING, -1)
            # By the clock, not by timed-out waits: releases by live
            # subscribers may keep waking us while a dead one holds us back.
            if _now() - last_reap >= SLICE:
                _reap_dead(buf, geo)
                last_reap = _now()

    return wait


def _scan(buf: memoryview, geo: _Geometry, name: str, seq: int) -> int:
    """The oldest sample a live block subscriber still needs (``seq`` if none)."""
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
                raise ProtocolError(f"publisher {name!r}: subscriber entry {i} claims to have read "
                                    f"sample {r} of {seq}; the segment is corrupted")
            low = min(low, r)
        elif state not in (FREE, CLAIMING):
            raise ProtocolError(f"publisher {name!r}: subscriber entry {i} has state {state}; "
                                "the segment is corrupted")
    return low


def _close_publisher(core: PubSubCore, seg: SharedMemory) -> None:
    try:
        core.close()  # marks the segment closed and wakes every subscriber
    finally:
        seg.close()
