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
    152   publisher doorbell: fd u32, fdwait u32, inode u64 (asyncio waits)
    192   subscriber table: max_subscribers x 64-byte entries
              word i64 (state | ticket << 8), pid u32, policy u32, start u64,
              read_seq i64 (oldest sample not yet released), dropped i64,
              received i64, doorbell (fd u32, fdwait u32, inode u64)
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
moves its start past the slot being overwritten.  The publisher's side of
that handshake (and of waking sleepers) uses no fence when the process is
registered for membarrier: the subscriber's side (join, going to sleep)
then calls ``heavy_fence()``, which runs a full barrier on every CPU of a
registered process -- the asymmetric scheme of the shm:// rings.

Nothing read from the segment is trusted: the geometry is validated once at
open and kept in Python, lengths and sequence numbers read later are checked
against it, and anything inconsistent raises ``ProtocolError``.

The hot path (``Publisher.send``, ``Subscriber.recv``, ``Sample``) is C
(``_native.PubSubCore``, src/native/pubsub_core.c); the numbers above come
from C too (``_native.PUBSUB_LAYOUT``).
"""

from .._shm import register_details
from ._layout import DEFAULT_MAX_SUBSCRIBERS as DEFAULT_MAX_SUBSCRIBERS, DEFAULT_SPIN as DEFAULT_SPIN, SLICE as SLICE
from ._layout import OFF_TABLE as OFF_TABLE, SLOT_HEADER as SLOT_HEADER, _details
from ._publisher import Loan as Loan, Publisher as Publisher
from ._subscriber import Sample as Sample, Subscriber as Subscriber

register_details("pub", _details)
