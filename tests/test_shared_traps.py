"""SharedStruct traps (issue 10): typos, reserved names, errors that name the field.

A second process checks that a refused assignment wrote nothing."""

from __future__ import annotations

import pytest

from interproc.shared import Int8, Int64, SharedStruct, Str, UInt16


class Counters(SharedStruct):
    hits: Int64 = 0
    owner: Str(4) = ""
    tiny: Int8 = 0
    port: UInt16 = 0


CHECK = """
import sys
from interproc.shared import Int8, Int64, SharedStruct, Str, UInt16
class Counters(SharedStruct):
    hits: Int64 = 0
    owner: Str(4) = ""
    tiny: Int8 = 0
    port: UInt16 = 0
with Counters.attach(sys.argv[1]) as c:
    print(c.as_dict())
"""


def test_typo_attribute_is_an_error_naming_the_fields(name, spawn):
    with Counters.attach(name) as c:
        with pytest.raises(AttributeError, match=r"'hitz'.*hits, owner, tiny, port.*did you mean 'hits'"):
            c.hitz = 3
        assert not hasattr(c, "hitz")
        c.hits = 3
        out = spawn.run(CHECK, name)
        assert "'hits': 3" in out
        c.unlink()


def test_bad_values_name_the_field_and_write_nothing(name, spawn):
    with Counters.attach(name) as c:
        with pytest.raises(OverflowError, match=r"Counters\.hits: 1180591620717411303424 does not fit an i64 field"):
            c.hits = 2**70
        with pytest.raises(OverflowError, match=r"Counters\.tiny: 200 does not fit an i8 field \(signed 8-bit: -128\.\.127\)"):
            c.tiny = 200
        with pytest.raises(OverflowError, match=r"Counters\.port: -1 does not fit a u16 field \(unsigned 16-bit: 0\.\.65535\)"):
            c.port = -1
        with pytest.raises(ValueError, match=r"Counters\.owner: 6 bytes do not fit a str4 field"):
            c.owner = "abcdef"
        with pytest.raises(TypeError, match=r"Counters\.owner: a str4 field takes a str, not int"):
            c.owner = 5
        out = spawn.run(CHECK, name)
        assert "{'hits': 0, 'owner': '', 'tiny': 0, 'port': 0}" in out
        c.unlink()


@pytest.mark.parametrize("reserved", ["name", "lock", "close", "created", "fields", "add"])
def test_reserved_field_names_are_refused_and_listed(reserved):
    with pytest.raises(TypeError, match=rf"{reserved}.*reserved.*attach, close"):
        type("Bad", (SharedStruct,), {"__annotations__": {reserved: Int64}})
