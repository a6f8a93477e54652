"""Named shared memory with Win32 file-mapping semantics on POSIX shm.

Segment layout (little-endian)::

    0     magic          8s   b"IPROCSHM"
    8     version        u32  LAYOUT_VERSION
    12    header_size    u32  HEADER_SIZE
    16    size           u64  logical size of the user area (not page-rounded)
    24    state          u32  PENDING / READY (a futex word: openers sleep on it)
    28    flags          u32  PERSISTENT | REMOVED
    32    creator pid    u32, pad, creator start time u64
    48    init pid       u32, pad, init start time u64 (who runs init now)
    64    lock           robust process-shared mutex guarding flags and slots
    128   kind           16s
    256   attach slots   MAX_ATTACH x (pid u32, pad, start u64)
    HEADER_SIZE          the user area (page aligned)

Why this shape:

* A segment is born complete: the creator builds the header under a
  temporary name and ``link()``s it into place, so an opener never sees a
  half-written header or a zero-sized file.
* Lifetime follows the Win32 rule: each handle takes an attach slot naming
  its process (pid + start time, so a reused pid is not mistaken for the old
  one).  The last handle to close removes the name; a segment whose
  attachers all died is found dead by the next ``open``/``create``/``gc``.
* ``create_or_open(init=)`` runs ``init`` exactly once: the creator holds
  the init claim; openers sleep on ``state``; if the initializer dies, one
  waiter claims it under the lock and runs ``init`` on a zeroed area.
"""

from __future__ import annotations

import mmap
import os
import secrets
import stat
import struct
import time
import weakref
from typing import Any, Callable, Iterator

from . import _native
from ._errors import AlreadyExists, InterprocError, NotFound, PermissionDenied, ProtocolError, Timeout, map_os_error
from ._naming import Scope, check_private, check_segment_file, parse_segment_name, segment_name, validate_name, validate_scope
from ._platform import SHM_DIR, ProcessId, current_process, is_alive, shm_path
from ._registry import STATE_ALIVE, STATE_PERSISTENT, STATE_STALE, ObjectInfo, register
from ._lifecycle import finalizer, run_quietly
from ._timeout import deadline_of, nobody_came

MAGIC = b"IPROCSHM"
LAYOUT_VERSION = 2  # 2: the header lock holds integers only (no pthread mutex)
HEADER_SIZE = 8192
MAX_SIZE = 1 << 40  # 1 TiB: far beyond RAM, small enough to catch nonsense

PENDING, READY = 0, 1
F_PERSISTENT, F_REMOVED = 1, 2

_FIXED = struct.Struct("<8sIIQII")  # magic, version, header_size, size, state, flags
_IDENT = struct.Struct("<I4xQ")  # pid, start
OFF_STATE, OFF_FLAGS = 24, 28
OFF_CREATOR, OFF_INIT = 32, 48
OFF_LOCK, OFF_KIND = 64, 128
OFF_SLOTS = 256
MAX_ATTACH = (HEADER_SIZE - OFF_SLOTS) // _IDENT.size
LOCK_TIMEOUT = 10.0  # nobody holds the header lock for long; longer means corruption
INIT_POLL = 0.1  # how often a waiting opener checks that the initializer lives

assert _native.MUTEX_SIZE <= OFF_KIND - OFF_LOCK


def _check_size(size: object) -> int:
    if not isinstance(size, int) or isinstance(size, bool):
        raise TypeError(f"size must be an int, not {type(size).__name__}")
    if size <= 0:
        raise ValueError(f"size must be > 0 bytes, got {size}")
    if size > MAX_SIZE:
        raise ValueError(f"size {size} is larger than the {MAX_SIZE}-byte limit")
    return size


def _check_deadline(deadline: float | None, what: str) -> None:
    # A name that keeps vanishing and reappearing (a hostile or very busy
    # peer) must not keep a caller past its timeout.
    if deadline is not None and time.monotonic() >= deadline:
        raise Timeout(f"{what} kept changing under us for the whole timeout")


class _Mapping:
    """An fd plus its mmap; released together, and only once."""

    def __init__(self, fd: int, length: int) -> None:
        self.fd = fd
        try:
            self.mm = mmap.mmap(fd, length, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(fd)
            raise
        self.buf = memoryview(self.mm)

    def release(self) -> None:
        if self.fd < 0:
            return
        self.buf.release()
        try:
            self.mm.close()
        except BufferError:
            # Views handed out to the user are still alive; the mapping goes
            # away when the last of them does.
            pass
        os.close(self.fd)
        self.fd = -1


_OPEN_FLAGS = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC


def _map_segment(path: str, scope: Scope, what: str) -> tuple[_Mapping | None, os.stat_result]:
    """Open, vet and map an existing segment file.

    The owner and mode are checked on the descriptor (``fstat`` after an
    O_NOFOLLOW open) before a single byte is mapped: a user-scope name that
    another uid made or can write is refused with ``PermissionDenied``.
    Returns ``(None, stat)`` for a file too small to hold a header; errors
    of ``open()`` reach the caller, who knows what they mean there.
    """
    fd = os.open(path, _OPEN_FLAGS)
    try:
        st = os.fstat(fd)
        check_segment_file(st, what, scope)
    except BaseException:
        os.close(fd)
        raise
    if st.st_size < HEADER_SIZE:
        os.close(fd)
        return None, st
    return _Mapping(fd, st.st_size), st


def _read_ident(buf: memoryview, off: int) -> ProcessId:
    pid, start = _IDENT.unpack_from(buf, off)
    return ProcessId(pid, start)


def _validate_header(buf: memoryview, file_size: int, what: str, kind: str | None) -> int:
    """Check a mapped header; return the logical size.  Never trusts the bytes."""
    if file_size < HEADER_SIZE:
        raise ProtocolError(f"{what} is {file_size} bytes, smaller than an interproc header")
    magic, version, header_size, size, state, flags = _FIXED.unpack_from(buf, 0)
    if magic != MAGIC:
        raise ProtocolError(f"{what} has no interproc header (magic {magic!r}); was it made by another program? use raw=True")
    if version != LAYOUT_VERSION:
        raise ProtocolError(f"{what} has layout version {version}; this interproc understands version {LAYOUT_VERSION}")
    if header_size != HEADER_SIZE:
        raise ProtocolError(f"{what} has a header of {header_size} bytes, expected {HEADER_SIZE}")
    if size <= 0 or size > file_size - HEADER_SIZE:
        raise ProtocolError(f"{what} claims {size} bytes but the file holds {file_size - HEADER_SIZE}")
    if state not in (PENDING, READY) or flags & ~(F_PERSISTENT | F_REMOVED):
        raise ProtocolError(f"{what} has a corrupted header (state {state}, flags {flags:#x})")
    if kind is not None:
        stored = bytes(buf[OFF_KIND : OFF_KIND + 16]).rstrip(b"\0").decode("ascii", "replace")
        if stored != kind:
            raise ProtocolError(f"{what} holds a {stored!r} object, not a {kind!r}")
    return size


class _HeaderLock:
    """The robust lock guarding a segment's flags and attach slots.

    It waits at most until ``deadline`` (``Timeout``), and never more than
    LOCK_TIMEOUT (``ProtocolError``): a caller's timeout holds even while
    another process sits on the lock, stopped or hostile.
    """

    def __init__(self, buf: memoryview, what: str, deadline: float | None = None) -> None:
        self.buf, self.what, self.deadline = buf, what, deadline

    def __enter__(self) -> None:
        wait = LOCK_TIMEOUT
        if self.deadline is not None:
            wait = max(0.0, min(wait, self.deadline - time.monotonic()))
        try:
            got = _native.mutex_lock(self.buf, OFF_LOCK, wait)
        except (OSError, ValueError) as exc:
            raise ProtocolError(f"{self.what}: header lock is corrupted ({exc})") from exc
        if got < 0 and wait < LOCK_TIMEOUT:
            raise Timeout(f"{self.what}: its header lock stayed held by another process for the whole timeout")
        if got < 0:
            raise ProtocolError(f"{self.what}: header lock held for over {LOCK_TIMEOUT:.0f} s; the header is corrupted or a process is stuck")
        # got == 1: a process died inside the lock; the slots are still
        # consistent (each update is one 16-byte record) so carry on.

    def __exit__(self, *exc: object) -> None:
        try:
            _native.mutex_unlock(self.buf, OFF_LOCK)
        except (OSError, ValueError) as err:
            # Someone rewrote the lock while we held it.
            raise ProtocolError(f"{self.what}: header lock was overwritten while held ({err})") from err


def _slots(buf: memoryview) -> Iterator[tuple[int, ProcessId]]:
    for i in range(MAX_ATTACH):
        off = OFF_SLOTS + i * _IDENT.size
        ident = _read_ident(buf, off)
        if ident.pid:
            yield off, ident


def _reap(buf: memoryview) -> list[ProcessId]:
    """Clear the slots of dead processes (lock held); return the live ones."""
    live = []
    for off, ident in _slots(buf):
        if is_alive(ident):
            live.append(ident)
        else:
            _IDENT.pack_into(buf, off, 0, 0)
    return live


def _attach(buf: memoryview, who: ProcessId, what: str) -> int:
    """Take a free slot (lock held), clearing dead ones if none is; return its offset."""
    for full_pass in (False, True):
        if full_pass:
            _reap(buf)
        for i in range(MAX_ATTACH):
            off = OFF_SLOTS + i * _IDENT.size
            if _IDENT.unpack_from(buf, off)[0] == 0:
                _IDENT.pack_into(buf, off, who.pid, who.start)
                return off
    raise InterprocError(f"{what} already has {MAX_ATTACH} open handles, the most a segment records")


def _same_file(fd: int, path: str) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _remove_name(buf: memoryview, fd: int, path: str) -> None:
    """Mark the segment removed and unlink its name (lock held)."""
    flags = struct.unpack_from("<I", buf, OFF_FLAGS)[0]
    struct.pack_into("<I", buf, OFF_FLAGS, flags | F_REMOVED)
    if _same_file(fd, path):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _detach(m: _Mapping, slot: int, path: str, who: ProcessId) -> None:
    """Give up a handle's slot; the last live handle removes the name."""
    if m.fd < 0:
        return
    if current_process() != who:
        # A forked child inherited the handle: the slot is its parent's.
        m.release()
        return
    try:
        # Someone may have scribbled over the header since we opened it.
        _validate_header(m.buf, len(m.buf), path, None)
        with _HeaderLock(m.buf, path):
            if _read_ident(m.buf, slot) == who:
                _IDENT.pack_into(m.buf, slot, 0, 0)
            flags = struct.unpack_from("<I", m.buf, OFF_FLAGS)[0]
            if not flags & (F_PERSISTENT | F_REMOVED) and not _reap(m.buf):
                _remove_name(m.buf, m.fd, path)
    except ProtocolError:
        pass  # a corrupted segment cannot be cleaned up by us; gc reports it
    finally:
        m.release()


class SharedMemory:
    """A named shared-memory segment (a Win32 named file mapping).

    Use the classmethods: :meth:`create`, :meth:`open`, :meth:`create_or_open`.
    ``created`` is True only in the process that created the segment.
    """

    KIND = "shm"

    name: str
    scope: Scope
    size: int
    created: bool
    raw: bool

    def __init__(self, *_: Any, **__: Any) -> None:
        raise TypeError("use SharedMemory.create(), .open() or .create_or_open()")

    # -- constructors --------------------------------------------------
    @classmethod
    def create(cls, name: str, size: int, *, scope: Scope = "user", mode: int | None = None,
               persistent: bool = False, raw: bool = False) -> "SharedMemory":
        """Create a new segment; ``AlreadyExists`` if the name is taken."""
        if raw:
            return cls._create_raw(name, size, scope, mode)
        while True:  # None: a dead segment held the name and was cleared; retry
            handle = cls._make(name, size, scope, mode, persistent, init=None, exclusive=True, deadline=None)
            if handle is not None:
                return handle

    @classmethod
    def open(cls, name: str, *, scope: Scope = "user", raw: bool = False,
             timeout: float | None = None) -> "SharedMemory":
        """Open an existing segment.

        ``NotFound`` at once if there is none, unless ``timeout`` is given:
        then wait that long for it to appear (and for its creator to finish
        initialising it), and raise ``Timeout`` if it does not.
        """
        if raw:
            return cls._open_raw(name, scope)
        deadline = deadline_of(timeout)
        while True:
            try:
                handle = cls._try_open(name, scope, None, deadline)
            except NotFound:
                if deadline is None:
                    raise
                left = deadline - time.monotonic()
                if left <= 0:
                    raise nobody_came(f"shm {name!r}", timeout) from None
                time.sleep(min(0.01, left))
                continue
            if handle is not None:
                return handle
            _check_deadline(deadline, f"shm {name!r}")

    @classmethod
    def create_or_open(cls, name: str, size: int, *, init: Callable[[memoryview], Any] | None = None,
                       scope: Scope = "user", mode: int | None = None, persistent: bool = False,
                       timeout: float | None = None) -> "SharedMemory":
        """Create the segment or open the existing one (CreateFileMapping).

        Exactly one process runs ``init(buf)`` on a fresh segment; the others
        wait (up to ``timeout``) until it has finished, and take over if the
        initializer dies first.  An existing segment keeps its own size:
        check ``handle.size``, and ``handle.created`` tells who created it.
        """
        deadline = deadline_of(timeout)
        while True:
            handle = cls._make(name, size, scope, mode, persistent, init, exclusive=False, deadline=deadline)
            if handle is not None:
                return handle
            _check_deadline(deadline, f"shm {name!r}")

    # -- creation / opening machinery -------------------------------------
    @classmethod
    def _names(cls, name: str, scope: Scope) -> tuple[str, str]:
        seg = segment_name(cls.KIND, name, scope)
        return seg, shm_path(seg)

    @classmethod
    def _make(cls, name: str, size: int, scope: Scope, mode: int | None, persistent: bool,
              init: Callable[[memoryview], Any] | None, exclusive: bool,
              deadline: float | None) -> "SharedMemory | None":
        """One attempt at create (or create-or-open); None means retry."""
        validate_name(name)
        size = _check_size(size)
        fmode = validate_scope(scope, mode)
        seg, path = cls._names(name, scope)
        me = current_process()
        tmp = shm_path(f".{seg}.{me.pid}.{secrets.token_hex(4)}")
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, fmode)
        except OSError as exc:
            raise map_os_error(exc, f"shm {name!r}") from exc
        try:
            os.fchmod(fd, fmode)  # the umask must not narrow an explicit mode
            os.ftruncate(fd, HEADER_SIZE + size)
        except OSError as exc:
            os.close(fd)
            os.unlink(tmp)
            raise map_os_error(exc, f"shm {name!r} ({size} bytes)") from exc
        m = _Mapping(fd, HEADER_SIZE + size)
        try:
            _FIXED.pack_into(m.buf, 0, MAGIC, LAYOUT_VERSION, HEADER_SIZE, size,
                             PENDING if init else READY, F_PERSISTENT if persistent else 0)
            _IDENT.pack_into(m.buf, OFF_CREATOR, *me)
            _IDENT.pack_into(m.buf, OFF_INIT, *me)
            m.buf[OFF_KIND : OFF_KIND + 16] = cls.KIND.encode().ljust(16, b"\0")
            _native.mutex_init(m.buf, OFF_LOCK)
            slot = OFF_SLOTS
            _IDENT.pack_into(m.buf, slot, *me)
            try:
                os.link(tmp, path)
                linked = True
            except FileExistsError:
                linked = False
        except BaseException:
            m.release()
            raise
        finally:
            os.unlink(tmp)

        if not linked:
            m.release()
            # Someone holds the name.  A dead segment is cleared away and we
            # retry; a live one is an error for create, an open for the rest.
            if cls._clear_if_dead(path, scope, f"shm {name!r}", deadline):
                return None
            if exclusive:
                raise AlreadyExists(f"shm {name!r} already exists")
            return cls._try_open(name, scope, init, deadline)

        handle = cls._wrap(m, name, scope, size, slot, created=True)
        if init is not None:
            handle._run_init(init, me)
        return handle

    @classmethod
    def _try_open(cls, name: str, scope: Scope, init: Callable[[memoryview], Any] | None,
                  deadline: float | None) -> "SharedMemory | None":
        seg, path = cls._names(name, scope)
        what = f"shm {name!r}"
        try:
            m, st = _map_segment(path, scope, what)
        except FileNotFoundError:
            if init is not None:
                return None  # vanished between link and open: create again
            raise NotFound(f"{what} does not exist") from None
        except PermissionDenied:
            raise
        except OSError as exc:
            raise map_os_error(exc, what) from exc
        if m is None:
            raise ProtocolError(f"{what} is {st.st_size} bytes, smaller than an interproc header")
        try:
            size = _validate_header(m.buf, st.st_size, what, cls.KIND)
            slot = 0
            with _HeaderLock(m.buf, what, deadline):
                flags = struct.unpack_from("<I", m.buf, OFF_FLAGS)[0]
                if flags & F_REMOVED:
                    pass  # lost a race with the last closer: look again
                elif not flags & F_PERSISTENT and not _reap(m.buf):
                    # Every process that had it open is gone: by the Win32
                    # rule the object no longer exists.
                    _remove_name(m.buf, m.fd, path)
                    flags |= F_REMOVED
                else:
                    slot = _attach(m.buf, current_process(), what)
        except BaseException:
            m.release()
            raise
        if not slot:
            m.release()
            if flags & F_REMOVED and init is None and not os.path.exists(path):
                raise NotFound(f"{what} does not exist (its last users died or closed it)")
            return None
        handle = cls._wrap(m, name, scope, size, slot, created=False)
        try:
            handle._wait_ready(init, deadline)
        except BaseException:
            handle.close()
            raise
        return handle

    @classmethod
    def _clear_if_dead(cls, path: str, scope: Scope, what: str, deadline: float | None = None) -> bool:
        """Remove the segment at ``path`` if no live process holds it.

        ``PermissionDenied`` if the name is squatted by another uid."""
        try:
            m, st = _map_segment(path, scope, what)
        except FileNotFoundError:
            return True
        except PermissionDenied:
            raise
        except OSError:
            return False
        if m is None:
            return False
        try:
            _validate_header(m.buf, st.st_size, path, None)
            with _HeaderLock(m.buf, path, deadline):
                flags = struct.unpack_from("<I", m.buf, OFF_FLAGS)[0]
                if flags & F_REMOVED:
                    return True
                if flags & F_PERSISTENT or _reap(m.buf):
                    return False
                _remove_name(m.buf, m.fd, path)
                return True
        except ProtocolError:
            return False
        finally:
            m.release()

    @classmethod
    def _wrap(cls, m: _Mapping, name: str, scope: Scope, size: int, slot: int,
              created: bool) -> "SharedMemory":
        self = object.__new__(cls)
        self.name, self.scope, self.size, self.created, self.raw = name, scope, size, created, False
        self._map = m
        self._path = cls._names(name, scope)[1]
        self._buf = m.buf[HEADER_SIZE : HEADER_SIZE + size]
        self._finalizer = finalizer(self, _detach, m, slot, self._path, current_process(),
                                    what=f"{'SharedMemory' if cls.KIND == 'shm' else cls.KIND} {name!r}")
        return self

    # -- initialisation -----------------------------------------------------
    def _run_init(self, init: Callable[[memoryview], Any], me: ProcessId) -> None:
        hdr = self._map.buf
        try:
            init(self._buf)
        except BaseException:
            # Give up the claim so a waiting opener can take over, then fail.
            with _HeaderLock(hdr, self._path):
                _IDENT.pack_into(hdr, OFF_INIT, 0, 0)
            _native.futex_wake(hdr, OFF_STATE)
            self.close()
            raise
        _native.atomic_store(hdr, OFF_STATE, READY, size=4, signed=False)
        _native.futex_wake(hdr, OFF_STATE)

    def _wait_ready(self, init: Callable[[memoryview], Any] | None, deadline: float | None) -> None:
        hdr = self._map.buf
        while _native.atomic_load(hdr, OFF_STATE, size=4, signed=False) != READY:
            owner = _read_ident(hdr, OFF_INIT)
            if not is_alive(owner):
                if init is None:
                    raise InterprocError(
                        f"shm {self.name!r}: its initializer (pid {owner.pid}) died before finishing; "
                        "open it with create_or_open(init=...) to take over"
                    )
                me = current_process()
                with _HeaderLock(hdr, self._path, deadline):
                    claimed = _read_ident(hdr, OFF_INIT) == owner and \
                        _native.atomic_load(hdr, OFF_STATE, size=4, signed=False) != READY
                    if claimed:
                        _IDENT.pack_into(hdr, OFF_INIT, *me)
                if claimed:
                    _zero(self._buf)
                    self._run_init(init, me)
                    return
                continue
            wait = INIT_POLL
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Timeout(f"shm {self.name!r} is still being initialised by pid {owner.pid}")
                wait = min(wait, left)
            _native.futex_wait(hdr, OFF_STATE, PENDING, wait)

    # -- raw segments (no header, for other programs) ------------------------
    @classmethod
    def _create_raw(cls, name: str, size: int, scope: Scope, mode: int | None) -> "SharedMemory":
        validate_name(name)
        size = _check_size(size)
        fmode = validate_scope(scope, mode)
        path = shm_path(name)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, fmode)
            os.fchmod(fd, fmode)
            os.ftruncate(fd, size)
        except OSError as exc:
            raise map_os_error(exc, f"raw shm {name!r}") from exc
        return cls._wrap_raw(fd, name, scope, size, created=True)

    @classmethod
    def _open_raw(cls, name: str, scope: Scope) -> "SharedMemory":
        validate_name(name)
        try:
            fd = os.open(shm_path(name), _OPEN_FLAGS)
        except OSError as exc:
            raise map_os_error(exc, f"raw shm {name!r}") from exc
        try:
            st = os.fstat(fd)
            check_segment_file(st, f"raw shm {name!r}", scope)
            if st.st_size == 0:
                raise ProtocolError(f"raw shm {name!r} is empty")
        except BaseException:
            os.close(fd)
            raise
        return cls._wrap_raw(fd, name, scope, st.st_size, created=False)

    @classmethod
    def _wrap_raw(cls, fd: int, name: str, scope: Scope, size: int, created: bool) -> "SharedMemory":
        self = object.__new__(cls)
        self.name, self.scope, self.size, self.created, self.raw = name, scope, size, created, True
        self._map = _Mapping(fd, size)
        self._path = shm_path(name)
        self._buf = self._map.buf[:size]
        self._finalizer = weakref.finalize(self, _release_raw, self._map)
        return self

    # -- the handle ---------------------------------------------------------
    @property
    def buf(self) -> memoryview:
        """The whole user area, writable."""
        self._check_open()
        return self._buf

    def view(self, offset: int, length: int) -> memoryview:
        """A writable view of ``length`` bytes at ``offset`` (bounds-checked)."""
        self._check_open()
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ValueError(f"view({offset}, {length}) is outside the {self.size}-byte segment {self.name!r}")
        return self._buf[offset : offset + length]

    def ndarray(self, dtype: Any, shape: int | tuple[int, ...], offset: int = 0) -> Any:
        """A numpy array laid over the segment (numpy is an optional dependency)."""
        try:
            import numpy as np
        except ImportError as exc:
            raise ImportError("ndarray() needs numpy: pip install numpy") from exc
        self._check_open()
        dt = np.dtype(dtype)
        shape_t = (shape,) if isinstance(shape, int) else tuple(shape)
        nbytes = dt.itemsize * int(np.prod(shape_t, dtype=np.int64))
        if offset < 0 or offset % dt.alignment:
            raise ValueError(f"offset {offset} is negative or not aligned for {dt}")
        if offset + nbytes > self.size:
            raise ValueError(f"an array of {shape_t} {dt} at offset {offset} needs {offset + nbytes} bytes; "
                             f"segment {self.name!r} has {self.size}")
        return np.ndarray(shape_t, dtype=dt, buffer=self._buf, offset=offset)

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    @property
    def persistent(self) -> bool:
        if self.raw:
            return True
        return bool(struct.unpack_from("<I", self._map.buf, OFF_FLAGS)[0] & F_PERSISTENT)

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError(f"shm {self.name!r} is closed")

    def close(self) -> None:
        """Close this handle; the last one to close removes a non-persistent segment."""
        run_quietly(self._finalizer)

    def unlink(self) -> None:
        """Remove the name now; open handles keep working until they close."""
        if self.raw:
            try:
                os.unlink(self._path)
            except FileNotFoundError:
                pass
            return
        self._check_open()
        try:
            with _HeaderLock(self._map.buf, self._path):
                _remove_name(self._map.buf, self._map.fd, self._path)
        except ProtocolError:
            # A corrupted header cannot be locked, but its name can still go.
            if _same_file(self._map.fd, self._path):
                os.unlink(self._path)

    def __enter__(self) -> "SharedMemory":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"size={self.size}"
        return f"<{type(self).__name__} {self.name!r} scope={self.scope} {state}{' created' if self.created else ''}>"


def _release_raw(m: _Mapping) -> None:
    m.release()


_ZERO = bytes(1 << 20)


def _zero(buf: memoryview) -> None:
    for start in range(0, len(buf), len(_ZERO)):
        chunk = min(len(_ZERO), len(buf) - start)
        buf[start : start + chunk] = _ZERO[:chunk]


# -- discovery: interproc ls / gc ----------------------------------------------

def _inspect(filename: str) -> ObjectInfo | None:
    parsed = parse_segment_name(filename)
    if parsed is None:
        return None
    scope, kind, name = parsed
    path = os.path.join(SHM_DIR, filename)
    try:
        m, st = _map_segment(path, scope, path)
    except PermissionDenied as exc:
        # Squatted or widened: listed, never mapped, never collected.
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:
            return None
        return ObjectInfo(kind, name, scope, None, st.st_size, st.st_mode, "foreign", path, {"error": str(exc)})
    except OSError:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return ObjectInfo(kind, name, scope, None, st.st_size, st.st_mode, "unreadable", path)
    if m is None:
        return ObjectInfo(kind, name, scope, None, st.st_size, st.st_mode, "corrupt", path)
    try:
        size = _validate_header(m.buf, st.st_size, path, None)
        flags = struct.unpack_from("<I", m.buf, OFF_FLAGS)[0]
        creator = _read_ident(m.buf, OFF_CREATOR)
        live = [ident for _, ident in _slots(m.buf) if is_alive(ident)]
        if flags & F_PERSISTENT:
            state = STATE_PERSISTENT
        else:
            state = STATE_ALIVE if live else STATE_STALE
        details = {"handles": len(live)}
        extra = _DETAILS.get(kind)
        if extra is not None:
            try:
                details.update(extra(m.buf[HEADER_SIZE : HEADER_SIZE + size]))
            except Exception as exc:  # a listing must not die on one odd object
                details["error"] = str(exc)
        return ObjectInfo(kind, name, scope, creator.pid, size, st.st_mode, state, path, details)
    except ProtocolError as exc:
        return ObjectInfo(kind, name, scope, None, st.st_size, st.st_mode, "corrupt", path, {"error": str(exc)})
    finally:
        m.release()


#: kind -> function(user area) -> dict of extra details for ``interproc ls``
_DETAILS: dict[str, Callable[[memoryview], dict]] = {}


def register_details(kind: str, fn: Callable[[memoryview], dict]) -> None:
    """Let a kind built on segments add details (e.g. subscriber counts) to ``ls``."""
    _DETAILS[kind] = fn


def _segment_files() -> list[str]:
    try:
        return sorted(os.listdir(SHM_DIR))
    except OSError:
        return []


#: kinds whose segments do not carry this module's header; their own
#: module lists them (e.g. a queue with a layout of its own)
_FOREIGN_KINDS: set[str] = set()


def register_foreign_kind(kind: str) -> None:
    """Declare that segments of ``kind`` are listed by their own module."""
    _FOREIGN_KINDS.add(kind)


def list_segments() -> list[ObjectInfo]:
    found = []
    for f in _segment_files():
        parsed = parse_segment_name(f)
        if parsed is None or parsed[1] in _FOREIGN_KINDS:
            continue
        info = _inspect(f)
        if info is not None:
            found.append(info)
    return found


def _clear_quietly(path: str, scope: Scope) -> bool:
    try:
        return SharedMemory._clear_if_dead(path, scope, path, time.monotonic() + 1.0)
    except (PermissionDenied, Timeout):
        return False


def collect_segments() -> list[ObjectInfo]:
    removed = []
    for info in list_segments():
        if info.state == STATE_STALE and _clear_quietly(info.path, info.scope):
            removed.append(info)
    # Temporary files of creators that died between open and link.
    for f in _segment_files():
        if f.startswith(".interproc."):
            try:
                pid = int(f.split(".")[-2])
            except ValueError:
                continue
            if not is_alive(ProcessId(pid, 0)):
                try:
                    os.unlink(os.path.join(SHM_DIR, f))
                except OSError:
                    pass
    return removed


register("segments", list_segments, collect_segments, remove=lambda info: SharedMemory._clear_if_dead(info.path))
