"""SharedStruct fields in the form type checkers accept: Annotated, with the same layout."""

from __future__ import annotations

import hashlib
from typing import Annotated

import pytest

from interproc.shared import Array, Bytes, Int32, Int64, SharedStruct, Str


def test_annotated_fields_give_the_layout_of_the_short_form(name, spawn):
    class Typed(SharedStruct):
        hits: Int64 = 0
        owner: Annotated[str, Str(32)] = ""
        blob: Annotated[bytes, Bytes(4)] = b""
        samples: Annotated[memoryview, Array(Int32, 4)]

    class Short(SharedStruct):
        hits: Int64 = 0
        owner: Str(32) = ""  # type: ignore[valid-type]  # the run-time-only form
        blob: Bytes(4) = b""  # type: ignore[valid-type]
        samples: Array(Int32, 4)  # type: ignore[valid-type]

    assert Typed.layout() == Short.layout() == "hits:i64,owner:str32,blob:bytes4,samples:i32[4]"
    # The fingerprint stored in segments is unchanged by the typing work: blake2b of the spec.
    assert Typed._fingerprint == int.from_bytes(
        hashlib.blake2b(Typed.layout().encode(), digest_size=8).digest(), "little")
    # And another process declaring the short form attaches to the same segment.
    with Typed.attach(name) as s:
        s.owner, s.hits = "typed", 7
        out = spawn.run(f"""
            from interproc.shared import SharedStruct, Int64, Str, Bytes, Array, Int32
            class Short(SharedStruct):
                hits: Int64 = 0
                owner: Str(32) = ""
                blob: Bytes(4) = b""
                samples: Array(Int32, 4)
            with Short.attach({name!r}) as s:
                print(s.owner, s.hits)
        """)
        assert out.split() == ["typed", "7"]


def test_annotated_without_a_field_type_is_refused():
    with pytest.raises(TypeError, match="not an interproc field type"):
        class Bad(SharedStruct):
            x: Annotated[int, "not a field type"] = 0
