"""Shared data: typed structs over a named segment (the DLL shared section).

See docs/shared.md::

    class Stats(SharedStruct):
        hits: Int64 = 0
        owner: Str(32) = ""

    stats = Stats.attach("app.stats")
    stats.add("hits", 1)
"""

from ._shared import (
    Array as Array,
    Bool as Bool,
    Bytes as Bytes,
    FieldType as FieldType,
    Float32 as Float32,
    Float64 as Float64,
    Int8 as Int8,
    Int16 as Int16,
    Int32 as Int32,
    Int64 as Int64,
    SharedStruct as SharedStruct,
    Str as Str,
    UInt8 as UInt8,
    UInt16 as UInt16,
    UInt32 as UInt32,
    UInt64 as UInt64,
)

__all__ = [
    "Array", "Bool", "Bytes", "FieldType", "Float32", "Float64", "Int16", "Int32", "Int64",
    "Int8", "SharedStruct", "Str", "UInt16", "UInt32", "UInt64", "UInt8",
]
