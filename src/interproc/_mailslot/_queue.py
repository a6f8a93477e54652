"""The local mailslot: a many-writer, one-reader message queue in shared memory.

Why not an AF_UNIX datagram socket: the kernel queues only
``net.unix.max_dgram_qlen`` (10 here) unread datagrams per socket, so writers
would block as soon as the reader is busy.  A mailslot must hold up to
``max_messages`` (10,000) while its owner does something else, without a
thread of the owner having to run.  So the queue lives in a segment
``/dev/shm/interproc.<uid>.mailslot.<name>`` that writers map and append to
themselves, under a robust process-shared mutex; futex words wake the reader
(new data) and writers waiting on a full queue (new space).

Segment layout (little-endian)::

    0    magic "IPMSLOT1"         8    version u32    12  state u32 (0 init, 1 ready, 2 closed)
    16   owner pid u64            24   owner start time u64 (clock ticks)
    32   max_message_size u64     40   max_messages u64      48  capacity u64 (ring bytes)
    56   head u64 (bytes consumed, ever growing)             64  tail u64 (bytes produced)
    72   count u64 (messages queued)
    80   data_seq u32 (futex: bumped per message)            84  space_seq u32 (futex: bumped per read)
    88   reader_waiting u32       92   writers_waiting u32   96  messages written, ever u64
    128  robust mutex             256  ring of `capacity` bytes

A record is ``u32 length, u32 ~length`` then the data, padded to 8 bytes.
Record headers never straddle the end of the ring (everything is 8-aligned);
data may, and is copied in two pieces.  A writer fills its record first and
publishes it last by moving ``tail``, so a writer killed mid-copy leaves no
partial message; whoever next takes the abandoned mutex recounts the ring.
Nothing read from the segment is trusted: lengths and positions are checked
before use and garbage raises ``ProtocolError``.
"""

from __future__ import annotations

import mmap
import os
import struct
import time

from .. import _native
from .._deadline import deadline_of as deadline_of, time_left as _remaining
from .._errors import MessageTooLarge, ProtocolError, Timeout
from .._naming import check_segment_file
from .._platform import current_process, hold_owner_lock, make_anonymous_file, owner_alive, publish_file

MAGIC = b"IPMSLOT1"
VERSION = 2  # 2: the queue lock holds integers only (no pthread mutex)
STATE_INIT, STATE_READY, STATE_CLOSED = 0, 1, 2

_O_VERSION, _O_STATE = 8, 12
_O_PID, _O_START = 16, 24
_O_MAXMSG, _O_MAXCOUNT, _O_CAP = 32, 40, 48
_O_HEAD, _O_TAIL, _O_COUNT = 56, 64, 72
_O_DATA_SEQ, _O_SPACE_SEQ = 80, 84
_O_READER_WAITING, _O_WRITERS_WAITING = 88, 92
_O_WRITTEN = 96
_O_MUTEX = 128
RING = 256
assert _native.MUTEX_SIZE <= RING - _O_MUTEX

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_REC = struct.Struct("<II")
_HEAD_TAIL_COUNT = struct.Struct("<QQQ")
# head, tail, count, data_seq, space_seq, reader_waiting, writers_waiting, written
_COUNTERS = struct.Struct("<QQQIIIIQ")
assert _O_HEAD + _COUNTERS.size == _O_WRITTEN + 8
_MASK32 = 0xFFFFFFFF

# A writer waiting on a full queue wakes at least this often to check that
# the reader still lives (a dead reader never bumps space_seq).
LIVENESS_SLICE = 0.1
# How long a caller whose deadline has passed still tries to take its name
# off a waiter count (it must not overrun its timeout by more than this).
_DEREGISTER_GRACE = 0.05


class Gone(Exception):
    """The queue's owner closed it or died (callers turn this into NotFound/ChannelClosed)."""


def record_size(n: int) -> int:
    return 8 + ((n + 7) & ~7)


class Queue:
    """One mapping of a mailslot segment; the owner's or a writer's."""

    def __init__(self, fd: int, mm: mmap.mmap, what: str) -> None:
        self.fd = fd
        self.mm = mm
        self.what = what
        self.max_message_size = _U64.unpack_from(mm, _O_MAXMSG)[0]
        self.max_messages = _U64.unpack_from(mm, _O_MAXCOUNT)[0]
        self.capacity = _U64.unpack_from(mm, _O_CAP)[0]
        self.inode = os.fstat(fd).st_ino

    # -- making and opening ------------------------------------------
    @classmethod
    def create(
        cls, directory: str, path: str, mode: int, max_message_size: int, max_messages: int, capacity: int, what: str
    ) -> "Queue":
        """Build, lock and initialise the segment, then give it its name (FileExistsError if taken)."""
        capacity = max((capacity + 7) & ~7, record_size(max_message_size))
        fd = make_anonymous_file(directory, mode)
        try:
            hold_owner_lock(fd)
            os.ftruncate(fd, RING + capacity)
            mm = mmap.mmap(fd, RING + capacity)
            me = current_process()
            mm[0:8] = MAGIC
            _U32.pack_into(mm, _O_VERSION, VERSION)
            _U64.pack_into(mm, _O_PID, me.pid)
            _U64.pack_into(mm, _O_START, me.start)
            _U64.pack_into(mm, _O_MAXMSG, max_message_size)
            _U64.pack_into(mm, _O_MAXCOUNT, max_messages)
            _U64.pack_into(mm, _O_CAP, capacity)
            _native.mutex_init(mm, _O_MUTEX)
            _U32.pack_into(mm, _O_STATE, STATE_READY)
            publish_file(fd, path)
        except BaseException:
            try:
                mm.close()  # type: ignore[possibly-undefined]
            except Exception:
                pass
            os.close(fd)
            raise
        return cls(fd, mm, what)

    @classmethod
    def open(cls, path: str, scope: str, what: str) -> "Queue":
        """Map an existing segment as a writer; FileNotFoundError if absent, ProtocolError if not a mailslot."""
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            st = os.fstat(fd)
            # Vetted on the descriptor before anything is mapped.
            check_segment_file(st, what, scope)  # type: ignore[arg-type]
            if st.st_size < RING:
                raise ProtocolError(f"{what}: segment of {st.st_size} bytes is too small to be a mailslot")
            mm = mmap.mmap(fd, st.st_size)
            try:
                if mm[0:8] != MAGIC or _U32.unpack_from(mm, _O_VERSION)[0] != VERSION:
                    raise ProtocolError(f"{what}: {path} is not an interproc mailslot (bad magic or version)")
                maxmsg, maxcount, cap = struct.unpack_from("<QQQ", mm, _O_MAXMSG)
                if cap % 8 or RING + cap > st.st_size or record_size(maxmsg) > cap or maxcount < 1:
                    raise ProtocolError(f"{what}: inconsistent header (capacity {cap}, max message {maxmsg})")
                return cls(fd, mm, what)
            except BaseException:
                mm.close()
                raise
        except BaseException:
            os.close(fd)
            raise

    def __del__(self) -> None:
        self.close()

    def close(self) -> None:
        if getattr(self, "fd", -1) >= 0:
            try:
                self.mm.close()
            except BufferError:  # a view is still exported; the GC unmaps it later
                pass
            os.close(self.fd)
            self.fd = -1

    # -- state ---------------------------------------------------------
    @property
    def state(self) -> int:
        return _U32.unpack_from(self.mm, _O_STATE)[0]

    def owner_alive(self) -> bool:
        return owner_alive(self.fd)

    def owner_pid(self) -> int:
        return _U64.unpack_from(self.mm, _O_PID)[0]

    def mark_closed(self) -> None:
        """Owner side: refuse further writes; wake waiting writers and readers to see it."""
        _U32.pack_into(self.mm, _O_STATE, STATE_CLOSED)
        self.wake_writers()
        self.wake_reader()

    # -- the mutex -----------------------------------------------------
    def _lock(self, deadline: float | None) -> None:
        try:
            rc = _native.mutex_lock(self.mm, _O_MUTEX, None if deadline is None else _remaining(deadline))
        except ValueError as exc:  # the native core found the mutex corrupted
            raise ProtocolError(f"{self.what}: {exc}") from None
        if rc < 0:
            raise Timeout(f"{self.what}: timed out waiting for the queue lock")
        if rc == 1:
            # The previous holder died inside put/get: make the counters
            # agree with the ring again before anyone uses them.
            try:
                self._repair()
            except BaseException:
                _native.mutex_unlock(self.mm, _O_MUTEX)
                raise

    def _unlock(self) -> None:
        try:
            _native.mutex_unlock(self.mm, _O_MUTEX)
        except (OSError, ValueError) as exc:
            # Another writer of a global queue rewrote the lock while we held it.
            raise ProtocolError(f"{self.what}: the queue lock was overwritten while held ({exc})") from None

    def _check_positions(self, head: int, tail: int) -> None:
        if head % 8 or tail % 8 or not 0 <= tail - head <= self.capacity:
            raise ProtocolError(f"{self.what}: corrupt queue positions (head {head}, tail {tail})")

    def _counters(self) -> tuple[int, int, int]:
        head, tail, count = _HEAD_TAIL_COUNT.unpack_from(self.mm, _O_HEAD)
        self._check_positions(head, tail)
        return head, tail, count

    def _record_length(self, pos: int, head: int, tail: int) -> int:
        n, check = _REC.unpack_from(self.mm, RING + pos % self.capacity)
        if check != n ^ _MASK32 or n > self.max_message_size or pos + record_size(n) > tail:
            raise ProtocolError(f"{self.what}: corrupt record at queue position {pos}")
        return n

    def _repair(self) -> None:
        try:
            head, tail, _ = self._counters()
        except ProtocolError:
            # Killed in the middle of writing the counters themselves: what is
            # queued cannot be trusted, but the mailslot can go on, empty.
            _HEAD_TAIL_COUNT.pack_into(self.mm, _O_HEAD, 0, 0, 0)
            return
        pos, count = head, 0
        while pos < tail:
            try:
                n = self._record_length(pos, head, tail)
            except ProtocolError:
                break  # a half-written record: it was never published, drop it
            pos += record_size(n)
            count += 1
        _HEAD_TAIL_COUNT.pack_into(self.mm, _O_HEAD, head, pos, count)

    def _add32(self, offset: int, delta: int) -> int:
        value = (_U32.unpack_from(self.mm, offset)[0] + delta) & _MASK32
        _U32.pack_into(self.mm, offset, value)
        return value

    def _deregister(self, offset: int, deadline: float | None = None) -> None:
        # Bounded: a caller's timeout holds even if a writer sits on the lock
        # (stopped, say).  Left registered, we only cost spurious wake-ups.
        try:
            self._lock(None if deadline is None else max(deadline, time.monotonic() + _DEREGISTER_GRACE))
        except Timeout:
            return
        try:
            if _U32.unpack_from(self.mm, offset)[0]:
                self._add32(offset, -1)
        finally:
            self._unlock()

    # -- writing ---------------------------------------------------------
    def put(self, data: memoryview, deadline: float | None, *, wait: bool = True, owner: bool = False) -> bool:
        """Append one message; wait for space until ``deadline`` (Timeout), or return
        False at once when full and ``wait`` is false.  Raises Gone if the owner closed
        or died, MessageTooLarge over the owner's limit.  ``owner=True`` when the
        owner itself writes (its domain receiver): probing its own lock would drop it."""
        n = data.nbytes
        if n > self.max_message_size:
            raise MessageTooLarge(
                f"{self.what}: message of {n} bytes is over the mailslot's max_message_size of {self.max_message_size}"
            )
        need = record_size(n)
        # One system call per write: a write after the server died fails
        # instead of vanishing into its queue.
        if not owner and not self.owner_alive():
            raise Gone("died")
        mm = self.mm
        registered = False
        try:
            while True:
                self._lock(deadline)
                try:
                    head, tail, count, dseq, sseq, rwait, wwait, written = _COUNTERS.unpack_from(mm, _O_HEAD)
                    if registered:
                        wwait = max(0, wwait - 1)
                        registered = False
                    if _U32.unpack_from(mm, _O_STATE)[0] != STATE_READY:
                        _COUNTERS.pack_into(mm, _O_HEAD, head, tail, count, dseq, sseq, rwait, wwait, written)
                        raise Gone("closed")
                    self._check_positions(head, tail)
                    if count < self.max_messages and tail - head + need <= self.capacity:
                        self._store(tail, data, n)
                        # One copy of the counters: tail moves (publishing the
                        # record) together with count; a holder dying half-way
                        # is repaired by the recount in _lock.
                        _COUNTERS.pack_into(
                            mm, _O_HEAD, head, tail + need, count + 1, (dseq + 1) & _MASK32, sseq, rwait, wwait,
                            written + 1,
                        )
                        break
                    if not wait:
                        _COUNTERS.pack_into(mm, _O_HEAD, head, tail, count, dseq, sseq, rwait, wwait, written)
                        return False
                    _COUNTERS.pack_into(mm, _O_HEAD, head, tail, count, dseq, sseq, rwait, wwait + 1, written)
                    registered = True
                finally:
                    self._unlock()
                if not owner and not self.owner_alive():
                    raise Gone("died")
                left = _remaining(deadline)
                if left == 0:
                    raise Timeout(
                        f"{self.what}: the queue stayed full ({self.max_messages} messages or "
                        f"{self.capacity} bytes) for the whole timeout"
                    )
                _native.futex_wait(mm, _O_SPACE_SEQ, sseq, LIVENESS_SLICE if left is None else min(left, LIVENESS_SLICE))
        finally:
            if registered:
                self._deregister(_O_WRITERS_WAITING, deadline)
        if rwait:
            _native.futex_wake(mm, _O_DATA_SEQ)  # every reader thread re-checks
        return True

    def _store(self, pos: int, data: memoryview, n: int) -> None:
        cap, mm = self.capacity, self.mm
        start = pos % cap
        if n <= 4096 and start + 8 + n <= cap:  # small and unwrapped: one copy
            mm[RING + start : RING + start + 8 + n] = _REC.pack(n, n ^ _MASK32) + data
            return
        _REC.pack_into(mm, RING + start, n, n ^ _MASK32)
        at = (pos + 8) % cap
        first = min(n, cap - at)
        mm[RING + at : RING + at + first] = data[:first]
        if first < n:
            mm[RING : RING + n - first] = data[first:]

    # -- reading (owner only) --------------------------------------------
    def get(self, deadline: float | None, *, wait: bool = True) -> bytes | None:
        """Take the oldest message, waiting until ``deadline`` (Timeout); with
        ``wait=False`` return None at once when the queue is empty."""
        got = self.get_many(deadline, wait=wait, max_count=1)
        return got[0] if got else None

    def get_many(
        self, deadline: float | None, *, wait: bool = True, max_count: int = 64, max_bytes: int = 1 << 20
    ) -> list[bytes]:
        """Take up to ``max_count`` messages (at least one, and ``max_bytes`` only
        after the first) under one lock, waiting for the first until ``deadline``.
        Taking many at once keeps the reader off the lock writers contend for."""
        mm = self.mm
        registered = False
        out: list[bytes] = []
        try:
            while True:
                self._lock(deadline)
                try:
                    head, tail, count, dseq, sseq, rwait, wwait, written = _COUNTERS.unpack_from(mm, _O_HEAD)
                    if registered:
                        rwait = max(0, rwait - 1)
                        registered = False
                    if _U32.unpack_from(mm, _O_STATE)[0] != STATE_READY:
                        _COUNTERS.pack_into(mm, _O_HEAD, head, tail, count, dseq, sseq, rwait, wwait, written)
                        raise Gone("closed")
                    self._check_positions(head, tail)
                    if count:
                        size = 0
                        while count and len(out) < max_count and size < max_bytes:
                            n = self._record_length(head, head, tail)
                            out.append(self._load(head, n))
                            head += record_size(n)
                            count -= 1
                            size += n
                        _COUNTERS.pack_into(
                            mm, _O_HEAD, head, tail, count, dseq, (sseq + 1) & _MASK32, rwait, wwait, written
                        )
                        break
                    _COUNTERS.pack_into(mm, _O_HEAD, head, tail, count, dseq, sseq, rwait + wait, wwait, written)
                    if not wait:
                        return out
                    registered = True
                finally:
                    self._unlock()
                left = _remaining(deadline)
                if left == 0:
                    raise Timeout(f"{self.what}: no message arrived within the timeout")
                _native.futex_wait(mm, _O_DATA_SEQ, dseq, left)
        finally:
            if registered:
                self._deregister(_O_READER_WAITING, deadline)
        if wwait:
            _native.futex_wake(mm, _O_SPACE_SEQ)
        return out

    def _load(self, pos: int, n: int) -> bytes:
        cap, mm = self.capacity, self.mm
        at = (pos + 8) % cap
        first = min(n, cap - at)
        if first == n:
            return mm[RING + at : RING + at + n]
        return mm[RING + at : RING + at + first] + mm[RING : RING + n - first]

    def data_seq(self) -> int:
        return _native.atomic_load(self.mm, _O_DATA_SEQ, size=4, signed=False)

    def _registered_wait(self, word: int, counter: int, seq: int, timeout: float | None) -> None:
        # Writers only issue a futex wake when the waiter counter says someone
        # sleeps, so count ourselves in first.  Had the word already moved on
        # before that, futex_wait sees the new value and returns at once.
        deadline = deadline_of(timeout)
        try:
            self._lock(deadline)
        except Timeout:
            return  # a holder sat on the lock for the whole timeout: the caller re-checks
        try:
            self._add32(counter, 1)
        finally:
            self._unlock()
        try:
            _native.futex_wait(self.mm, word, seq, _remaining(deadline))
        finally:
            self._deregister(counter, deadline)

    def wait_data(self, seq: int, timeout: float | None) -> None:
        """Sleep while no message was written since ``seq`` was read (for the asyncio waiter)."""
        self._registered_wait(_O_DATA_SEQ, _O_READER_WAITING, seq, timeout)

    def space_seq(self) -> int:
        return _native.atomic_load(self.mm, _O_SPACE_SEQ, size=4, signed=False)

    def wait_space(self, seq: int, timeout: float | None) -> None:
        """Sleep while nothing was read since ``seq`` was read (for the asyncio writer)."""
        self._registered_wait(_O_SPACE_SEQ, _O_WRITERS_WAITING, seq, timeout)

    # The words only ever mean "something may have changed", so bumping them
    # spuriously is harmless -- and it catches a sleeper that has read the old
    # value but not yet entered futex_wait, which a bare wake would miss.
    def wake_writers(self) -> None:
        _native.atomic_add(self.mm, _O_SPACE_SEQ, 1, size=4, signed=False)
        _native.futex_wake(self.mm, _O_SPACE_SEQ)

    def wake_reader(self) -> None:
        """Wake whoever sleeps in :meth:`wait_data` (a spurious wake-up; sleepers re-check)."""
        _native.atomic_add(self.mm, _O_DATA_SEQ, 1, size=4, signed=False)
        _native.futex_wake(self.mm, _O_DATA_SEQ)

    def status(self, timeout: float | None = None) -> tuple[int, int | None, int]:
        """(messages queued, size of the next one or None, messages written ever)."""
        self._lock(deadline_of(timeout))
        try:
            head, tail, count = self._counters()
            next_size = self._record_length(head, head, tail) if count else None
            return count, next_size, _U64.unpack_from(self.mm, _O_WRITTEN)[0]
        finally:
            self._unlock()
