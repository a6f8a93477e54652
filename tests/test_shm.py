"""Named shared memory across real processes."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys

import pytest

from conftest import wait_for_line
from interproc import AlreadyExists, InterprocError, NotFound, PermissionDenied, ProtocolError, Timeout
from interproc._naming import segment_name
from interproc.shm import SharedMemory


def seg_path(name: str, kind: str = "shm", scope: str = "user") -> str:
    return os.path.join("/dev/shm", segment_name(kind, name, scope))


def test_create_open_share_bytes_between_processes(name, spawn):
    with SharedMemory.create(name, 1000) as shm:
        assert shm.created and shm.size == 1000 and len(shm.buf) == 1000
        shm.buf[:5] = b"hello"
        out = spawn.run(f"""
            from interproc.shm import SharedMemory
            with SharedMemory.open({name!r}) as s:
                print(bytes(s.buf[:5]).decode(), s.size, s.created)
                s.buf[10:13] = b"abc"
        """)
        assert out.split() == ["hello", "1000", "False"]
        assert bytes(shm.buf[10:13]) == b"abc"


def test_segment_is_user_private_and_named_readably(name):
    with SharedMemory.create(name, 64):
        st = os.stat(seg_path(name))
        assert st.st_mode & 0o777 == 0o600
        assert st.st_uid == os.getuid()


def test_create_twice_and_open_missing(name):
    with SharedMemory.create(name, 64):
        with pytest.raises(AlreadyExists, match=name):
            SharedMemory.create(name, 64)
    with pytest.raises(NotFound):
        SharedMemory.open(name)
    assert issubclass(NotFound, FileNotFoundError)


@pytest.mark.parametrize("bad", ["", "a/b", "white space", "x" * 129, "..", "ü"])
def test_bad_names_are_rejected_with_the_reason(bad):
    with pytest.raises(ValueError) as info:
        SharedMemory.create(bad, 64)
    assert "name" in str(info.value)


@pytest.mark.parametrize("size,exc", [(0, ValueError), (-1, ValueError), (1 << 50, ValueError),
                                      (2.5, TypeError), (True, TypeError)])
def test_bad_sizes(name, size, exc):
    with pytest.raises(exc, match="size"):
        SharedMemory.create(name, size)


def test_huge_but_valid_size_fails_cleanly_or_works(name):
    # 64 GiB on tmpfs: ftruncate is lazy, so it may succeed; touching a page must work.
    try:
        shm = SharedMemory.create(name, 64 << 30)
    except OSError as exc:  # ENOSPC/ENOMEM are acceptable, as a clear OSError
        assert name in str(exc)
        return
    with shm:
        shm.buf[-1] = 7
        assert shm.buf[-1] == 7


def test_global_scope_needs_mode_and_uses_it(name):
    with pytest.raises(ValueError, match="mode"):
        SharedMemory.create(name, 64, scope="global")
    with pytest.raises(ValueError, match="global"):
        SharedMemory.create(name, 64, mode=0o644)
    with SharedMemory.create(name, 64, scope="global", mode=0o640) as shm:
        assert os.stat(seg_path(name, scope="global")).st_mode & 0o777 == 0o640
        with SharedMemory.open(name, scope="global") as other:
            assert other.size == shm.size


def test_refuses_a_segment_someone_else_could_read(name):
    with SharedMemory.create(name, 64):
        os.chmod(seg_path(name), 0o644)
        with pytest.raises(PermissionDenied, match="0600"):
            SharedMemory.open(name)
        os.chmod(seg_path(name), 0o600)


def test_refuses_foreign_owned_segment(name, spawn):
    # A segment under our name but owned by another uid (a squatter).
    with SharedMemory.create(name, 64):
        os.chown(seg_path(name), 65534, 65534)
        with pytest.raises(PermissionDenied, match="uid 65534"):
            SharedMemory.open(name)
        os.chown(seg_path(name), os.getuid(), os.getgid())


def test_last_close_removes_the_segment(name, spawn):
    shm = SharedMemory.create(name, 64)
    child = spawn(f"""
        import sys
        from interproc.shm import SharedMemory
        s = SharedMemory.open({name!r})
        print("OPEN", flush=True)
        sys.stdin.readline()
        s.close()
        print("CLOSED", flush=True)
    """, stdin=subprocess.PIPE)
    wait_for_line(child, "OPEN")
    shm.close()
    assert os.path.exists(seg_path(name)), "the child still has it open"
    child.stdin.write("\n")
    child.stdin.flush()
    wait_for_line(child, "CLOSED")
    child.wait(10)
    assert not os.path.exists(seg_path(name))


def test_process_exit_without_close_detaches(name, spawn):
    spawn.run(f"""
        from interproc.shm import SharedMemory
        s = SharedMemory.create({name!r}, 64)   # never closed explicitly
    """)
    assert not os.path.exists(seg_path(name))


def test_sigkill_of_every_attacher_is_found_by_next_open_and_gc(name, spawn):
    procs = []
    for i in range(2):
        p = spawn(f"""
            import time
            from interproc.shm import SharedMemory
            s = SharedMemory.create_or_open({name!r}, 64)
            print("READY", flush=True)
            time.sleep(60)
        """)
        wait_for_line(p, "READY")
        procs.append(p)
    for p in procs:
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert os.path.exists(seg_path(name)), "nothing cleaned up yet"
    from interproc._shm import list_segments

    states = {i.name: i.state for i in list_segments()}
    assert states[name] == "stale"
    with pytest.raises(NotFound, match="died"):
        SharedMemory.open(name)
    assert not os.path.exists(seg_path(name))


def test_gc_removes_stale_segments(name, spawn):
    p = spawn(f"""
        import time
        from interproc.shm import SharedMemory
        s = SharedMemory.create({name!r}, 64)
        print("READY", flush=True)
        time.sleep(60)
    """)
    wait_for_line(p, "READY")
    p.kill()
    p.wait()
    out = subprocess.run([sys.executable, "-m", "interproc", "gc"], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), "..", "src")),
                         timeout=30)
    assert name in out.stdout
    assert not os.path.exists(seg_path(name))


def test_create_over_a_dead_segment_succeeds(name, spawn):
    p = spawn(f"""
        import time
        from interproc.shm import SharedMemory
        s = SharedMemory.create({name!r}, 64)
        s.buf[0] = 42
        print("READY", flush=True)
        time.sleep(60)
    """)
    wait_for_line(p, "READY")
    p.kill()
    p.wait()
    with SharedMemory.create(name, 128) as shm:
        assert shm.created and shm.size == 128 and shm.buf[0] == 0


def test_persistent_survives_and_unlink_removes(name, spawn):
    spawn.run(f"""
        from interproc.shm import SharedMemory
        with SharedMemory.create({name!r}, 64, persistent=True) as s:
            s.buf[0] = 9
    """)
    with SharedMemory.open(name) as shm:
        assert shm.buf[0] == 9 and shm.persistent
        shm.unlink()
        assert not os.path.exists(seg_path(name))
        shm.buf[1] = 1  # still mapped after unlink
    with pytest.raises(NotFound):
        SharedMemory.open(name)


def test_existing_size_wins_like_createfilemapping(name):
    with SharedMemory.create(name, 100) as a:
        with SharedMemory.create_or_open(name, 5000) as b:
            assert not b.created and b.size == 100


INIT_CHILD = """
import os, sys, time
from interproc.shm import SharedMemory
name, log = sys.argv[1], sys.argv[2]
def init(buf):
    with open(log, "a") as f:
        f.write(f"{os.getpid()}\\n")
    time.sleep(0.3)            # a slow initializer: the others must wait
    buf[:4] = b"INIT"
print("READY", flush=True)
sys.stdin.readline()           # all four start together (a slow start must not find it gone)
with SharedMemory.create_or_open(name, 64, init=init, timeout=20) as s:
    print(bytes(s.buf[:4]).decode(), s.created, flush=True)
"""


def test_create_or_open_runs_init_exactly_once(name, spawn, tmp_path):
    log = tmp_path / "init.log"
    procs = [spawn(INIT_CHILD, name, str(log), stdin=subprocess.PIPE) for _ in range(4)]
    for p in procs:
        wait_for_line(p, "READY")
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    outs = [p.communicate(timeout=30) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    lines = [o[0].split() for o in outs]
    assert all(line[0] == "INIT" for line in lines)
    assert sorted(line[1] for line in lines) == ["False", "False", "False", "True"]
    assert len(log.read_text().split()) == 1


def test_initializer_killed_mid_init_is_taken_over(name, spawn, tmp_path):
    stuck = spawn(f"""
        import time
        from interproc.shm import SharedMemory
        def init(buf):
            buf[:4] = b"HALF"
            print("INITIALISING", flush=True)
            time.sleep(60)
        SharedMemory.create_or_open({name!r}, 64, init=init)
    """)
    wait_for_line(stuck, "INITIALISING")
    waiter = spawn(f"""
        from interproc.shm import SharedMemory
        def init(buf):
            assert bytes(buf[:4]) == bytes(4), "takeover must see a zeroed area"
            buf[:4] = b"DONE"
        with SharedMemory.create_or_open({name!r}, 64, init=init, timeout=20) as s:
            print(bytes(s.buf[:4]).decode(), flush=True)
    """)
    # The waiter must be waiting now, not done.
    with pytest.raises(subprocess.TimeoutExpired):
        waiter.wait(0.5)
    stuck.kill()
    stuck.wait()
    out, err = waiter.communicate(timeout=20)
    assert waiter.returncode == 0, err
    assert out.strip() == "DONE"


def test_plain_open_waits_for_init_and_times_out(name, spawn):
    stuck = spawn(f"""
        import time
        from interproc.shm import SharedMemory
        def init(buf):
            print("INITIALISING", flush=True)
            time.sleep(60)
        SharedMemory.create_or_open({name!r}, 64, init=init)
    """)
    wait_for_line(stuck, "INITIALISING")
    with pytest.raises(Timeout, match="initialised"):
        SharedMemory.open(name, timeout=0.3)
    stuck.kill()
    stuck.wait()
    with pytest.raises((InterprocError, NotFound)):
        SharedMemory.open(name, timeout=5)


def test_failing_init_lets_the_next_process_initialise(name):
    def bad(buf):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        SharedMemory.create_or_open(name, 64, init=bad)
    with SharedMemory.create_or_open(name, 64, init=lambda b: b.__setitem__(0, 5)) as shm:
        assert shm.buf[0] == 5


def test_raw_interop_with_multiprocessing_shared_memory(name, spawn):
    from multiprocessing import shared_memory

    # multiprocessing creates, interproc opens.
    theirs = shared_memory.SharedMemory(name=name, create=True, size=4096)
    try:
        theirs.buf[:3] = b"mp!"
        with SharedMemory.open(name, raw=True) as mine:
            assert bytes(mine.buf[:3]) == b"mp!" and mine.raw
            mine.buf[3:6] = b"ip!"
        assert bytes(theirs.buf[:6]) == b"mp!ip!"
    finally:
        theirs.close()
        theirs.unlink()
    # interproc creates raw, another process opens it with multiprocessing.
    with SharedMemory.create(name, 4096, raw=True) as mine:
        mine.buf[:2] = b"hi"
        out = spawn.run(f"""
            from multiprocessing import shared_memory, resource_tracker
            s = shared_memory.SharedMemory(name={name!r})
            resource_tracker.unregister(s._name, "shared_memory")
            print(bytes(s.buf[:2]).decode()); s.close()
        """)
        assert out.strip() == "hi"
        mine.unlink()


def test_views_and_bounds(name):
    with SharedMemory.create(name, 100) as shm:
        v = shm.view(10, 20)
        v[:] = b"x" * 20
        assert bytes(shm.buf[10:30]) == b"x" * 20
        v.release()
        for off, length in [(-1, 1), (90, 11), (0, 101)]:
            with pytest.raises(ValueError, match="outside"):
                shm.view(off, length)


def test_ndarray_shared_between_processes(name, spawn):
    np = pytest.importorskip("numpy")
    with SharedMemory.create(name, 8 * 100) as shm:
        arr = shm.ndarray(np.float64, (10, 10))
        arr[:] = np.arange(100).reshape(10, 10)
        out = spawn.run(f"""
            import numpy as np
            from interproc.shm import SharedMemory
            with SharedMemory.open({name!r}) as s:
                a = s.ndarray(np.float64, (10, 10))
                print(a.sum()); a *= 2; del a
        """)
        assert float(out) == 4950.0
        assert arr.sum() == 9900.0
        with pytest.raises(ValueError, match="needs"):
            shm.ndarray(np.float64, 101)
        del arr


def _corrupt(name: str, offset: int, data: bytes, spawn) -> None:
    """Write raw bytes into a segment's header from another process."""
    spawn.run(f"""
        import os
        fd = os.open({seg_path(name)!r}, os.O_RDWR)
        os.pwrite(fd, {data!r}, {offset}); os.close(fd)
    """)


@pytest.mark.parametrize("offset,data,match", [
    (0, b"GARBAGE!", "no interproc header"),
    (8, struct.pack("<I", 99), "layout version 99"),
    (16, struct.pack("<Q", 1 << 60), "claims"),
    (24, struct.pack("<I", 77), "corrupted"),
])
def test_corrupted_header_is_a_protocol_error(name, spawn, offset, data, match):
    with SharedMemory.create(name, 64, persistent=True) as shm:
        _corrupt(name, offset, data, spawn)
        with pytest.raises(ProtocolError, match=match):
            SharedMemory.open(name)
        os.unlink(seg_path(name))
        del shm


def test_random_garbage_header_never_crashes(name, spawn):
    with SharedMemory.create(name, 64, persistent=True):
        _corrupt(name, 0, os.urandom(8192), spawn)
        with pytest.raises(ProtocolError):
            SharedMemory.open(name)
        os.unlink(seg_path(name))


def test_truncated_file_is_a_protocol_error(name):
    path = seg_path(name)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.write(fd, b"short")
        with pytest.raises(ProtocolError, match="smaller"):
            SharedMemory.open(name)
    finally:
        os.close(fd)
        os.unlink(path)


def test_closed_handle_refuses_use(name):
    shm = SharedMemory.create(name, 64)
    shm.close()
    shm.close()  # idempotent
    assert shm.closed
    with pytest.raises(ValueError, match="closed"):
        shm.buf


def test_direct_construction_is_refused():
    with pytest.raises(TypeError, match="create"):
        SharedMemory("x")


def test_forked_child_closing_an_inherited_handle_leaves_the_parents_alone(name):
    with SharedMemory.create(name, 64) as shm:
        pid = os.fork()
        if pid == 0:  # child: close the inherited handle, then exit normally
            try:
                shm.close()
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        assert os.path.exists(seg_path(name))
        with SharedMemory.open(name) as again:
            assert again.size == 64


@pytest.mark.parametrize("seed", range(8))
def test_garbage_over_the_header_lock_never_aborts(name, spawn, seed):
    # glibc aborts on a mutex whose type word is garbage; the native core
    # checks the type word first, so every use reports corruption instead.
    import random

    garbage = random.Random(seed).randbytes(64)
    with SharedMemory.create(name, 64, persistent=True) as shm:
        _corrupt(name, 64, garbage, spawn)  # only the header lock
        with pytest.raises(ProtocolError, match="lock"):
            SharedMemory.open(name)
        shm.unlink()
    # close() of the handle above met the same lock and survived


def test_corrupted_mutex_is_an_error_not_a_crash(name, spawn):
    from interproc.sync import Mutex

    m = Mutex(name)
    try:
        _corrupt_kind = os.urandom(40)
        spawn.run(f"""
            import os
            fd = os.open({seg_path(name, "mutex")!r}, os.O_RDWR)
            os.pwrite(fd, {_corrupt_kind!r}, 8192); os.close(fd)
        """)
        with pytest.raises(ValueError, match="corrupted"):
            m.acquire(timeout=1)
    finally:
        m.close()
