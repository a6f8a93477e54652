"""The C core never trusts offsets: every access is bounds- and alignment-checked."""

import mmap

import pytest

from interproc import _native


def test_atomics_on_a_buffer():
    buf = bytearray(64)
    assert _native.atomic_add(buf, 8, 5) == 0
    assert _native.atomic_load(buf, 8) == 5
    assert _native.atomic_exchange(buf, 8, -1) == 5
    assert _native.atomic_compare_exchange(buf, 8, -1, 3) == (True, -1)
    assert _native.atomic_compare_exchange(buf, 8, -1, 4) == (False, 3)
    _native.atomic_store(buf, 0, 255, size=1, signed=False)
    assert _native.atomic_load(buf, 0, size=1, signed=True) == -1


@pytest.mark.parametrize("offset", [-8, 64, 60, 1 << 40])
def test_out_of_bounds_offsets_raise(offset):
    with pytest.raises(ValueError, match="outside"):
        _native.atomic_load(bytearray(64), offset)


def test_misaligned_offset_raises():
    with pytest.raises(ValueError, match="aligned"):
        _native.atomic_load(bytearray(64), 4, size=8)
    with pytest.raises(ValueError, match="size"):
        _native.atomic_load(bytearray(64), 0, size=3)


def test_read_only_buffer_is_refused():
    with pytest.raises(TypeError):
        _native.atomic_store(bytes(64), 0, 1)


def test_futex_wait_times_out_and_sees_changed_values():
    m = mmap.mmap(-1, 4096)
    try:
        assert _native.futex_wait(m, 0, 0, 0.01) is False  # value matches: sleeps, times out
        assert _native.futex_wait(m, 0, 1, 1.0) is True  # value differs: returns at once
        assert _native.futex_wake(m, 0) == 0
        with pytest.raises(ValueError, match="timeout"):
            _native.futex_wait(m, 0, 0, -1)
        with pytest.raises(ValueError, match="outside"):
            _native.futex_wait(m, 4096, 0, 0)
    finally:
        m.close()


def test_mutex_timeout_and_unlock_errors():
    m = mmap.mmap(-1, 4096)
    try:
        _native.mutex_init(m, 0)
        assert _native.mutex_lock(m, 0, 0) == 0
        _native.mutex_unlock(m, 0)
        with pytest.raises(OSError):
            _native.mutex_unlock(m, 0)  # not the owner any more
        with pytest.raises(ValueError, match="outside"):
            _native.mutex_init(m, 4090)
    finally:
        m.close()


def test_type_stub_matches_the_module():
    import ast
    import pathlib

    stub = pathlib.Path(_native.__file__).with_name("_native.pyi")
    if not stub.exists():  # an installed wheel next to the stub in src/
        stub = pathlib.Path(__file__).resolve().parent.parent / "src" / "interproc" / "_native.pyi"
    tree = ast.parse(stub.read_text())
    declared = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    declared |= {n.target.id for n in tree.body if isinstance(n, ast.AnnAssign)}
    exported = {n for n in dir(_native) if not n.startswith("_")}
    assert declared == exported


def test_robust_mutex_object_tracks_depth_and_refuses_foreign_release():
    import threading

    m = mmap.mmap(-1, 4096)
    _native.mutex_init(m, 64)
    rm = _native.RobustMutex(m, 64)
    try:
        assert rm.acquire() and rm.acquire(timeout=0) and rm.held
        rm.release()
        assert rm.held
        seen = []
        t = threading.Thread(target=lambda: seen.append((rm.acquire(blocking=False), rm.held)))
        t.start()
        t.join()
        assert seen == [(False, False)]
        rm.release()
        assert not rm.held
        with pytest.raises(OSError):
            rm.release()
        with pytest.raises(ValueError, match="timeout"):
            rm.acquire(timeout=-1)
        with pytest.raises(ValueError, match="outside"):
            _native.RobustMutex(m, 4090)
    finally:
        rm.close()
        with pytest.raises(ValueError, match="closed"):
            rm.acquire()
        m.close()  # no export left: the mapping can go


def test_wait_take_and_post_check_their_arguments():
    buf = bytearray(64)
    with pytest.raises(ValueError, match="outside"):
        _native.wait_take(buf, 56, 0, 0)
    with pytest.raises(ValueError, match="kind"):
        _native.wait_take(buf, 0, 7, 0)
    buf[4] = 2  # maximum 2
    assert _native.post(buf, 0, 0, 2) == 0
    with pytest.raises(ValueError, match="maximum 2"):
        _native.post(buf, 0, 0, 1)
    assert _native.wait_take(buf, 0, 0, 0) and _native.wait_take(buf, 0, 0, 0)
    assert not _native.wait_take(buf, 0, 0, 0.01)


def test_layouts_come_from_c_and_errors_live_in_module_state():
    from interproc._shmchannel import _channel as _shmchannel
    from interproc import HandleClosed, ChannelClosed
    from interproc._pubsub import _layout

    chan = _native.CHAN_LAYOUT
    assert _shmchannel.OFF_SIDE == (chan["OFF_SIDE_A"], chan["OFF_SIDE_B"]) == (24, 40)
    assert _shmchannel.OFF_RINGS == (chan["OFF_RING0"], chan["OFF_RING1"])
    assert chan["OFF_DATA"] == _native.CHAN_DATA_OFFSET
    assert _layout.OFF_TABLE == _native.PUBSUB_LAYOUT["OFF_TABLE"]
    with pytest.raises(TypeError, match="exception classes"):
        _native.set_errors(closed=ChannelClosed, timeout=int, protocol=ValueError,
                           too_large=ValueError, handle_closed=HandleClosed)
    # The classes set at import are what the C core raises.
    m = mmap.mmap(-1, 1 << 16)
    core = _native.PubSubCore(m, True, 1, 8, 2, 0, 0.0, lambda seq, t: None)
    core.close()
    with pytest.raises(HandleClosed):
        core.send(b"x")
    del core
    m.close()
