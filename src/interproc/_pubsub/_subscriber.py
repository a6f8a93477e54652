"""The receiving side: ``Subscriber`` and the ``Sample`` it hands out."""

from __future__ import annotations

import struct
import time
import weakref
from typing import Any

from .._errors import ChannelClosed, InterprocError, NotFound, ProtocolError, Timeout
from .._naming import Scope
from .._platform import ProcessId, current_process, is_alive
from .._shm import SharedMemory
from ._layout import (
    ACTIVE, BLOCK, CLAIMING, DEFAULT_SPIN, E_DROPPED, E_PID, E_READ, E_START, E_WORD, ENTRY, FREE,
    OFF_CLOSED, OFF_GEN, OFF_HWM, OFF_PUB_PID, OFF_PUB_WAITING, OFF_PUBLISHED, OFF_SPACE, OFF_SUB_WAITERS,
    OFF_TABLE, POLICIES, SLICE, SLOT_HEADER, WRITING, _U32, _add, _c_release, _c_slot, _c_spin, _cas,
    _check_spin, _check_timeout, _Geometry, _load, _now, _PubSegment, _reap_dead, _store, _wait, _wake,
)
from .._timeout import nobody_came
from ._lend import lend, take_back

class Sample:
    """A received sample: ``buf`` is a read-only memoryview, valid until released.

    Use it as a context manager or call ``release()``; for *block*
    subscribers the publisher cannot reuse the slot until then.  ``release()``
    releases ``buf``; a numpy array (or other export) still over it is a
    ``BufferError``, and the sample stays held until the array is gone and
    ``release()`` is called again, so the array never shows a rewritten slot.
    """

    __slots__ = ("seq", "buf", "_sub", "_exporter")

    def __init__(self, sub: "Subscriber", seq: int, buf: memoryview, exporter: Any = None) -> None:
        self._sub, self.seq, self.buf, self._exporter = sub, seq, buf, exporter

    def release(self) -> None:
        sub = self._sub
        if sub is None:
            return
        if self._exporter is None:
            self.buf.release()  # a copy (drop_oldest): nothing in the slot to protect
        elif not take_back(self._exporter, self.buf):
            raise BufferError(
                f"sample #{self.seq}'s buf is still exported (a numpy array or other view over it is "
                f"alive): delete it before releasing the sample; the slot stays held until then") from None
        self._sub = None
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
        then wait that long for it to appear (``Timeout`` if it does not).
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
                if deadline is None:
                    raise NotFound(f"no publisher {name!r}") from None
                if _now() >= deadline:
                    raise nobody_came(f"publisher {name!r}", timeout) from None
                time.sleep(0.01)
            except Timeout:  # SharedMemory.open waited for the segment: same rule, our name
                raise nobody_came(f"publisher {name!r}", timeout) from None
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
        exporter, view = lend(buf, start, n, readonly=True)
        return Sample(self, r, view, exporter)

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
