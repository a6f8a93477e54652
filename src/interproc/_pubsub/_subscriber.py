"""The receiving side: ``Subscriber`` and the ``Sample`` it hands out."""

from __future__ import annotations

import struct
import time
from typing import Any

from .._errors import ChannelClosed, HandleClosed, InterprocError, NotFound, Timeout
from .._lifecycle import finalizer, run_quietly
from .._naming import Scope
from .._platform import ProcessId, current_process, is_alive
from .._shm import SharedMemory
from ._layout import (
    ACTIVE, CLAIMING, DEFAULT_SPIN, E_PID, E_READ, E_START, E_WORD, ENTRY, FREE, OFF_CLOSED, OFF_GEN,
    OFF_HWM, OFF_PUB_PID, OFF_PUB_WAITING, OFF_PUBLISHED, OFF_SPACE, OFF_SUB_WAITERS, OFF_TABLE,
    POLICIES, SLICE, _U32, _add, _cas, _check_spin, _check_timeout, _Geometry, _load, _now,
    _PubSegment, _reap_dead, _store, _wait, _wake, PubSubCore, _heavy_fence,
)
from .. import _native
from .._deadline import nobody_came

#: A received sample: ``buf`` is a read-only memoryview, valid until
#: ``release()`` (or the end of a ``with`` block); also ``len()``, ``bytes()``,
#: indexing, ``== b"..."``, ``tobytes()``, ``seq`` and ``released``.  For
#: *block* subscribers the publisher cannot reuse the slot until then.
#: ``release()`` with a numpy array (or other view) still over ``buf`` is a
#: ``BufferError`` and the sample stays held until the array is gone and
#: ``release()`` is called again.  The type lives in C
#: (``_native.PubSubSample``): it is made on every receive.
Sample = _native.PubSubSample

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
            self._entry = self._join()
            try:
                core = PubSubCore(buf, False, geo.max_subs, geo.slot_size, geo.slots, geo.history, spin,
                                  _data_waiter(buf, name, self._pub), entry=self._entry,
                                  policy=self._policy, cursor=self._cursor)
            except BaseException:
                _leave(None, None, buf, self._entry)
                raise
        except BaseException:
            seg.close()
            raise
        self._core = core
        # The hot path: the C method itself, no Python frame in between.
        self.recv = core.recv  # type: ignore[method-assign]
        self._finalizer = finalizer(self, _leave, core, seg, buf, self._entry, what=f"Subscriber {name!r}")
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
                _heavy_fence()  # Dekker with the publisher's store of published, then load of gen
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
        return self._core.dropped

    @property
    def received(self) -> int:
        return self._core.received

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    @property
    def core(self) -> PubSubCore:
        """The C core (src/native/pubsub_core.c) that the blocking and the
        asyncio drivers both call: ``recv``, ``arm``/``disarm``, the doorbell."""
        return self._core

    def publisher_gone(self) -> bool:
        """True once the publishing process has died (``recv()`` then drains and
        raises ``ChannelClosed``)."""
        return not is_alive(self._pub)

    def _check_open(self) -> None:
        if self.closed:
            raise HandleClosed(f"subscriber of {self.name!r} is closed")

    # -- receiving ---------------------------------------------------------------
    def recv(self, *, timeout: float | None = None) -> Sample:  # replaced per instance
        """The next sample; ``Timeout`` if none comes in time, ``ChannelClosed``
        once the publisher has gone and everything it published was received."""
        return self._core.recv(timeout=timeout)

    def recv_bytes(self, *, timeout: float | None = None) -> bytes:
        """The next sample as bytes (a copy; the slot is released at once)."""
        with self.recv(timeout=timeout) as s:
            return s.tobytes()

    # -- waiting beside other objects (interproc.wait, selectors) -----------------
    def fileno(self) -> int:
        """A descriptor that polls readable when ``recv()`` may not wait: a sample
        is there, or the publisher closed or died.  Each call re-arms it (the
        publisher rings it once, then this subscriber counts as a sleeper until
        the next ``recv()``): call it before every wait, as ``interproc.wait``
        does.  It may be readable for nothing; ``ready()`` tells."""
        self._check_open()
        return self._core.fileno()

    def ready(self) -> bool:
        """True when ``recv()`` would not wait (it returns a sample or raises
        ``ChannelClosed`` at once)."""
        self._check_open()
        return self._core.ready() or self.publisher_gone()

    def _wake_publisher(self) -> None:
        buf = self._buf
        if _load(buf, OFF_PUB_WAITING):
            _add(buf, OFF_SPACE, 1, **_U32)
            _wake(buf, OFF_SPACE)

    def __iter__(self):
        """Yield samples (bytes) until the publisher closes."""
        while True:
            try:
                yield self.recv_bytes()
            except ChannelClosed:
                return

    def close(self) -> None:
        """Leave: the publisher stops waiting for this subscriber."""
        run_quietly(self._finalizer)

    def __enter__(self) -> "Subscriber":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.closed:
            return f"<Subscriber {self.name!r} closed>"
        return f"<Subscriber {self.name!r} policy={self.policy} received={self.received} dropped={self.dropped}>"


def _data_waiter(buf: memoryview, name: str, pub: ProcessId):
    """The subscriber's slow path, called by the C core after its spin: sleep
    until a sample after ``r`` may be there; ``Timeout``, or ``ChannelClosed``
    once the publisher closed or died.  A closure over the segment, not the
    Subscriber, so no reference cycle."""

    def wait(r: int, timeout: float | None) -> None:
        if timeout is not None and timeout <= 0:  # a poll (asyncio): no sleeper handshake
            if _load(buf, OFF_PUBLISHED) > r:
                return
            if _load(buf, OFF_CLOSED, **_U32):
                raise ChannelClosed(f"publisher {name!r} has closed")
            if not is_alive(pub):
                if _load(buf, OFF_PUBLISHED) > r:
                    return
                raise ChannelClosed(f"publisher {name!r} (pid {pub.pid}) died")
            raise Timeout(f"no sample from publisher {name!r} in time")
        deadline = None if timeout is None else _now() + timeout
        while True:
            _add(buf, OFF_SUB_WAITERS, 1)
            try:
                _heavy_fence()  # the publisher publishes without a full fence
                published = _load(buf, OFF_PUBLISHED)
                if published > r:
                    return
                if _load(buf, OFF_CLOSED, **_U32):
                    raise ChannelClosed(f"publisher {name!r} has closed")
                wait = SLICE
                if deadline is not None:
                    wait = min(wait, deadline - _now())
                    if wait <= 0:
                        raise Timeout(f"no sample from publisher {name!r} in time")
                woken = _wait(buf, OFF_PUBLISHED, published & 0xFFFFFFFF, wait)
            finally:
                _add(buf, OFF_SUB_WAITERS, -1)
            if not woken and not is_alive(pub):
                if _load(buf, OFF_PUBLISHED) > r:
                    return
                raise ChannelClosed(f"publisher {name!r} (pid {pub.pid}) died")

    return wait


def _leave(core: PubSubCore | None, seg: SharedMemory | None, buf: memoryview, entry: int) -> None:
    if core is not None:
        core.close()
    try:
        word = _load(buf, entry + E_WORD)
        if word & 0xFF == ACTIVE and _load(buf, entry + E_PID, **_U32) == current_process().pid:
            _store(buf, entry + E_WORD, word & ~0xFF | FREE)
            _add(buf, OFF_GEN, 1)
            if _load(buf, OFF_PUB_WAITING):
                _add(buf, OFF_SPACE, 1, **_U32)
                _wake(buf, OFF_SPACE)
    finally:
        if seg is not None:
            seg.close()
