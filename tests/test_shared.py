"""SharedStruct: typed shared globals across real processes."""

from __future__ import annotations

import pytest

from interproc import ProtocolError
from interproc.shared import (Array, Bool, Bytes, Float32, Float64, Int8, Int16, Int32, Int64,
                              SharedStruct, Str, UInt8, UInt16, UInt32, UInt64)


class Stats(SharedStruct):
    hits: Int64 = 0
    load: Float64 = 0.5
    owner: Str(32) = "nobody"
    small: Int8 = -3
    mid: UInt16 = 65535
    word: Int32 = 0
    u32: UInt32 = 0
    big: UInt64 = 2**64 - 1
    i16: Int16 = 0
    u8: UInt8 = 0
    ratio: Float32 = 0.25
    flag: Bool = True
    blob: Bytes(4) = b"ab"
    samples: Array(Int32, 8)


STATS_SRC = '''
from interproc.shared import *
class Stats(SharedStruct):      # declared independently: same fields, another class
    hits: Int64 = 0
    load: Float64 = 0.5
    owner: Str(32) = "nobody"
    small: Int8 = -3
    mid: UInt16 = 65535
    word: Int32 = 0
    u32: UInt32 = 0
    big: UInt64 = 2**64 - 1
    i16: Int16 = 0
    u8: UInt8 = 0
    ratio: Float32 = 0.25
    flag: Bool = True
    blob: Bytes(4) = b"ab"
    samples: Array(Int32, 8)
'''


def test_defaults_and_values_are_shared(name, spawn):
    with Stats.attach(name) as s:
        assert s.created
        assert (s.hits, s.load, s.owner, s.small, s.mid, s.big, s.flag, s.blob) == \
               (0, 0.5, "nobody", -3, 65535, 2**64 - 1, True, b"ab\0\0")
        s.owner = "parent"
        s.samples[3] = 42
        out = spawn.run(STATS_SRC + f'''
with Stats.attach({name!r}) as s:
    print(s.created, s.owner, s.samples[3], s.ratio)
    s.hits = 7; s.owner = "child"; s.small = -128
''')
        assert out.split() == ["False", "parent", "42", "0.25"]
        assert (s.hits, s.owner, s.small) == (7, "child", -128)


def test_defaults_are_applied_once(name, spawn):
    with Stats.attach(name) as s:
        s.hits = 99
        spawn.run(STATS_SRC + f"Stats.attach({name!r}).close()")
        with Stats.attach(name) as again:
            assert not again.created and again.hits == 99


ADDER = STATS_SRC + '''
import sys
with Stats.attach(sys.argv[1]) as s:
    for _ in range(int(sys.argv[2])):
        s.add("hits", 1)
        with s.lock:
            s.word = s.word + 1
'''


def test_atomic_add_and_lock_from_four_processes(name, spawn):
    n = 2000
    with Stats.attach(name) as s:
        procs = [spawn(ADDER, name, str(n)) for _ in range(4)]
        for p in procs:
            _, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
        assert s.hits == 4 * n
        assert s.word == 4 * n


def test_exchange_and_compare_exchange(name):
    with Stats.attach(name) as s:
        assert s.add("hits", 5) == 0
        assert s.exchange("hits", 10) == 5
        assert s.compare_exchange("hits", 10, 11) is True
        assert s.compare_exchange("hits", 10, 12) is False
        assert s.hits == 11
        assert s.add("u8", 300) == 0 and s.u8 == 44  # wraps like the C type
        with pytest.raises(TypeError, match="integer field"):
            s.add("load", 1)
        with pytest.raises(AttributeError, match="nope"):
            s.add("nope", 1)


def test_field_values_are_checked(name):
    with Stats.attach(name) as s:
        with pytest.raises(OverflowError, match="8-bit"):
            s.small = 200
        with pytest.raises(OverflowError):
            s.mid = -1
        with pytest.raises(TypeError, match="int"):
            s.hits = "3"
        with pytest.raises(ValueError, match="str32"):
            s.owner = "x" * 33
        with pytest.raises(ValueError, match="8 values"):
            s.samples = [1, 2]
        s.samples = range(8)
        assert list(s.samples) == list(range(8))
        s.owner = "ü" * 16  # 32 bytes of UTF-8 fit exactly
        assert s.owner == "ü" * 16


def test_a_different_layout_is_refused_with_both_layouts_named(name, spawn):
    with Stats.attach(name):
        out = spawn(f'''
from interproc.shared import SharedStruct, Int64, Float32
class Stats(SharedStruct):
    hits: Int64 = 0
    load: Float32 = 0.5
try:
    Stats.attach({name!r})
except Exception as exc:
    print(type(exc).__name__, exc)
''').communicate(timeout=30)[0]
        assert out.startswith("ProtocolError")
        assert "hits:i64,load:f64" in out and "declares [hits:i64,load:f32]" in out


def test_same_fields_in_another_order_is_a_different_layout(name):
    class A(SharedStruct):
        x: Int32 = 0
        y: Int32 = 0

    class B(SharedStruct):
        y: Int32 = 0
        x: Int32 = 0

    with A.attach(name):
        with pytest.raises(ProtocolError, match="different layout"):
            B.attach(name)


def test_bad_declarations():
    with pytest.raises(TypeError, match="not an interproc field type"):
        class Bad(SharedStruct):
            x: int = 0
    with pytest.raises(TypeError, match="reserved"):
        class Bad2(SharedStruct):
            lock: Int32 = 0
    with pytest.raises(ValueError):
        Str(0)
    with pytest.raises(TypeError, match="numeric"):
        Array(Str(4), 2)


def test_direct_construction_is_refused():
    with pytest.raises(TypeError, match="attach"):
        Stats()
