"""The ``pub`` segment's layout, its validated geometry and the subscriber table.

See the package docstring for the layout and why it is safe.
"""

from __future__ import annotations

import struct
import time

from .. import _native
from .._errors import (ChannelClosed, HandleClosed, MessageTooLarge, ProtocolError,
                       Timeout)
from .._platform import ProcessId, is_alive
from .._shm import SharedMemory
from .._timeout import check_timeout

MAGIC = b"IPPUBSUB"
VERSION = 1
_GEOM = struct.Struct("<8sIIQII")  # magic, version, max_subs, slot_size, slots, history

# The layout is written once, in C (src/native/pubsub.h), and read here.
_L = _native.PUBSUB_LAYOUT
OFF_PUBLISHED, OFF_SUB_WAITERS, OFF_CLOSED = _L["OFF_PUBLISHED"], _L["OFF_SUB_WAITERS"], _L["OFF_CLOSED"]
OFF_PUB_PID, OFF_HWM, OFF_SPACE = _L["OFF_PUB_PID"], _L["OFF_HWM"], _L["OFF_SPACE"]
OFF_PUB_WAITING, OFF_GEN, OFF_PUB_BELL = _L["OFF_PUB_WAITING"], _L["OFF_GEN"], _L["OFF_PUB_BELL"]
OFF_TABLE, ENTRY = _L["OFF_TABLE"], _L["ENTRY"]
E_WORD, E_PID, E_POLICY, E_START = _L["E_WORD"], _L["E_PID"], _L["E_POLICY"], _L["E_START"]
E_READ, E_DROPPED, E_RECEIVED, E_BELL = _L["E_READ"], _L["E_DROPPED"], _L["E_RECEIVED"], _L["E_BELL"]
SLOT_HEADER = _L["SLOT_HEADER"]
WRITING = _L["WRITING"]  # a slot's seq while the publisher fills it

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
_now = time.monotonic
PubSubCore = _native.PubSubCore
_heavy_fence = _native.heavy_fence

_native.set_errors(closed=ChannelClosed, timeout=Timeout, protocol=ProtocolError,
                   too_large=MessageTooLarge, handle_closed=HandleClosed)


def _round64(n: int) -> int:
    return (n + 63) & ~63


def _int_arg(value: object, what: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{what} must be {low}..{high}, got {value}")
    return value


def _check_timeout(timeout: float | None) -> float | None:
    if check_timeout(timeout) is None:
        return None
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
