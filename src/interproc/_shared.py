"""Typed structs laid over a named segment: the DLL shared data section.

A ``SharedStruct`` subclass declares typed fields; ``attach(name)`` creates
or opens the segment, and every process that attaches sees the same values.

User-area layout::

    0    fingerprint  u64   blake2b of the layout spec (names, types, order)
    8    spec length  u32   the spec text is stored at the end of the area
    16   lock               robust mutex for multi-field updates
    64   fields             naturally aligned, in declaration order
    ...  spec text          e.g. "hits:i64,load:f64,owner:str32"

The fingerprint covers field names, types and order but not the class name
or module, so two programs can declare the same struct independently; a
mismatch is reported with both layouts spelled out.

Typing: the numeric field types are ``Annotated`` aliases (``Int64`` is
``Annotated[int, <field i64>]``), so ``hits: Int64 = 0`` reads as an ``int``
to mypy and pyright, and the sized ones are written
``owner: Annotated[str, Str(32)]``. A bare ``owner: Str(32)`` (a call in an
annotation, which no type checker accepts) still works at run time; both forms
give the same layout and fingerprint.
"""

from __future__ import annotations

import difflib
import hashlib
import struct
import sys
from typing import Annotated, Any, ClassVar, TypeVar, get_args, get_origin

from . import _native
from ._errors import ProtocolError
from ._naming import Scope
from ._shm import SharedMemory, register_details
from ._sync import RobustLock

FIELDS_AT = 64
LOCK_AT = 16


class FieldType:
    """A field's type: size, alignment and how values are read and written."""

    spec: str
    size: int
    align: int
    default: Any
    signed: bool  # integer types only (the atomics check the type first)

    def get(self, buf: memoryview, off: int) -> Any:
        raise NotImplementedError

    def set(self, buf: memoryview, off: int, value: Any) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<field type {self.spec}>"


class _Int(FieldType):
    def __init__(self, bits: int, signed: bool) -> None:
        self.size = self.align = bits // 8
        self.signed = signed
        self.spec = f"{'i' if signed else 'u'}{bits}"
        self.default = 0

    def get(self, buf: memoryview, off: int) -> int:
        return _native.atomic_load(buf, off, size=self.size, signed=self.signed)

    def set(self, buf: memoryview, off: int, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"a {self.spec} field takes an int, not {type(value).__name__}")
        bits = self.size * 8
        low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if self.signed else (0, (1 << bits) - 1)
        if not low <= value <= high:
            kind, article = ("signed", "an") if self.signed else ("unsigned", "a")
            raise OverflowError(f"{value} does not fit {article} {self.spec} field ({kind} {bits}-bit: {low}..{high})")
        _native.atomic_store(buf, off, value, size=self.size, signed=self.signed)


class _Bool(_Int):
    def __init__(self) -> None:
        super().__init__(8, False)
        self.spec, self.default = "bool", False

    def get(self, buf: memoryview, off: int) -> bool:
        return bool(super().get(buf, off))

    def set(self, buf: memoryview, off: int, value: Any) -> None:
        _native.atomic_store(buf, off, 1 if value else 0, size=1, signed=False)


class _Float(FieldType):
    def __init__(self, bits: int) -> None:
        self.size = self.align = bits // 8
        self.fmt = "<f" if bits == 32 else "<d"
        self.spec, self.default = f"f{bits}", 0.0

    def get(self, buf: memoryview, off: int) -> float:
        value: float = struct.unpack_from(self.fmt, buf, off)[0]
        return value

    def set(self, buf: memoryview, off: int, value: Any) -> None:
        struct.pack_into(self.fmt, buf, off, float(value))


class Bytes(FieldType):
    """``Bytes(n)``: exactly n bytes; shorter values are padded with zeros."""

    def __init__(self, n: int) -> None:
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"Bytes(n) needs n >= 1, got {n!r}")
        self.size, self.align, self.spec, self.default = n, 1, f"bytes{n}", b""

    def get(self, buf: memoryview, off: int) -> bytes:
        return bytes(buf[off : off + self.size])

    def set(self, buf: memoryview, off: int, value: Any) -> None:
        data = bytes(value)
        if len(data) > self.size:
            raise ValueError(f"{len(data)} bytes do not fit a {self.spec} field")
        buf[off : off + self.size] = data.ljust(self.size, b"\0")


class Str(Bytes):
    """``Str(n)``: UTF-8 text of at most n bytes."""

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.spec, self.default = f"str{n}", ""

    def get(self, buf: memoryview, off: int) -> str:  # type: ignore[override]  # text, not bytes
        return bytes(buf[off : off + self.size]).rstrip(b"\0").decode("utf-8", "replace")

    def set(self, buf: memoryview, off: int, value: Any) -> None:
        if not isinstance(value, str):
            raise TypeError(f"a {self.spec} field takes a str, not {type(value).__name__}")
        super().set(buf, off, value.encode("utf-8"))


_ARRAY_FORMATS: dict[str, Any] = {"i8": "b", "u8": "B", "i16": "h", "u16": "H", "i32": "i", "u32": "I",
                  "i64": "q", "u64": "Q", "f32": "f", "f64": "d", "bool": "?"}


class Array(FieldType):
    """``Array(Int32, 16)``: a fixed array of numbers, read as a live typed memoryview."""

    def __init__(self, item: Any, n: int) -> None:
        ftype = _field_type(item)  # Int32 is Annotated[int, <field i32>]
        if ftype is None or ftype.spec not in _ARRAY_FORMATS:
            raise TypeError(f"Array items must be numeric field types, not {item!r}")
        item = ftype
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"Array length must be >= 1, got {n!r}")
        self.item, self.n = item, n
        self.size, self.align = item.size * n, item.align
        self.spec = f"{item.spec}[{n}]"
        self.default = None
        self.fmt = _ARRAY_FORMATS[item.spec]

    def get(self, buf: memoryview, off: int) -> memoryview:
        return buf[off : off + self.size].cast(self.fmt)

    def set(self, buf: memoryview, off: int, value: Any) -> None:
        values = list(value)
        if len(values) != self.n:
            raise ValueError(f"a {self.spec} field takes {self.n} values, got {len(values)}")
        view = self.get(buf, off)
        for i, v in enumerate(values):
            view[i] = v


# Annotated aliases rather than bare FieldType instances, so that `hits: Int64`
# is a valid annotation (an int) for type checkers; the field type rides along
# as the metadata and __init_subclass__ takes it from there.
Int8 = Annotated[int, _Int(8, True)]
Int16 = Annotated[int, _Int(16, True)]
Int32 = Annotated[int, _Int(32, True)]
Int64 = Annotated[int, _Int(64, True)]
UInt8 = Annotated[int, _Int(8, False)]
UInt16 = Annotated[int, _Int(16, False)]
UInt32 = Annotated[int, _Int(32, False)]
UInt64 = Annotated[int, _Int(64, False)]
Float32 = Annotated[float, _Float(32)]
Float64 = Annotated[float, _Float(64)]
Bool = Annotated[bool, _Bool()]


def _field_type(ann: Any) -> FieldType | None:
    """The FieldType an annotation declares: itself, or the one in ``Annotated[T, ...]``."""
    if isinstance(ann, FieldType):
        return ann
    if get_origin(ann) is Annotated:
        for meta in get_args(ann)[1:]:
            if isinstance(meta, FieldType):
                return meta
    return None


class _Field:
    """The descriptor that reads and writes one field of the attached segment."""

    def __init__(self, name: str, ftype: FieldType, offset: int, default: Any) -> None:
        self.name, self.type, self.offset, self.default = name, ftype, offset, default

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        return self.type.get(obj._fields_buf(), self.offset)

    def __set__(self, obj: Any, value: Any) -> None:
        try:
            self.type.set(obj._fields_buf(), self.offset, value)
        except (TypeError, ValueError, OverflowError) as exc:
            # Name the field: "int too big" alone does not say which of twenty.
            raise type(exc)(f"{type(obj).__name__}.{self.name}: {exc}") from None


#: Names a SharedStruct handle itself uses; a field may not take them.
_RESERVED = {"attach", "close", "closed", "lock", "add", "exchange", "compare_exchange",
             "name", "created", "unlink", "layout", "fields", "as_dict"}
#: Attributes ``attach`` sets on the handle; anything else assigned is a typo.
_HANDLE_ATTRS = {"_shm", "name", "created", "lock"}


_S = TypeVar("_S", bound="SharedStruct")


class SharedStruct:
    """Base class for structs shared between processes; see the module docstring."""

    # Set by attach() on each handle (not fields: __init_subclass__ reads only a
    # subclass's own annotations).
    name: str
    created: bool
    lock: RobustLock
    _shm: SharedMemory

    _layout: ClassVar[dict[str, _Field]] = {}
    _spec: ClassVar[str] = ""
    _fingerprint: ClassVar[int] = 0
    _size: ClassVar[int] = FIELDS_AT

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        annotations = cls.__dict__.get("__annotations__", {})
        # String annotations (from __future__ import annotations) are evaluated
        # where the class statement ran, so field types imported inside a
        # function resolve too.
        caller = sys._getframe(1)
        namespace = {**caller.f_globals, **caller.f_locals, **vars(cls)}
        layout: dict[str, _Field] = dict(cls._layout)
        offset = max([f.offset + f.type.size for f in layout.values()], default=FIELDS_AT)
        for fname, ann in annotations.items():
            if isinstance(ann, str):  # from __future__ import annotations
                ann = eval(ann, namespace)  # noqa: S307 - the class's own source text
            declared = ann
            ann = _field_type(ann)
            if ann is None:
                raise TypeError(f"{cls.__name__}.{fname}: {declared!r} is not an interproc field type "
                                "(Int64, Float64, Annotated[str, Str(32)], "
                                "Annotated[memoryview, Array(Int32, 4)], ...)")
            if fname in _RESERVED or fname.startswith("_"):
                raise TypeError(f"{cls.__name__}.{fname}: that field name is reserved (SharedStruct uses "
                                f"{', '.join(sorted(_RESERVED))}, and names starting with '_')")
            offset = -(-offset // ann.align) * ann.align
            default = cls.__dict__.get(fname, ann.default)
            layout[fname] = _Field(fname, ann, offset, default)
            setattr(cls, fname, layout[fname])
            offset += ann.size
        cls._layout = layout
        cls._spec = ",".join(f"{f.name}:{f.type.spec}" for f in layout.values())
        cls._fingerprint = int.from_bytes(hashlib.blake2b(cls._spec.encode(), digest_size=8).digest(), "little")
        cls._size = offset + len(cls._spec.encode())

    def __init__(self, *_: Any, **__: Any) -> None:
        raise TypeError(f"use {type(self).__name__}.attach(name)")

    @classmethod
    def attach(cls: type[_S], name: str, *, scope: Scope = "user", mode: int | None = None,
               persistent: bool = False, timeout: float | None = None) -> _S:
        """Create the struct (applying defaults once) or open the existing one."""
        if not cls._layout:
            raise TypeError(f"{cls.__name__} declares no fields")
        seg = _StructSegment.create_or_open(name, cls._size, init=cls._initialise, scope=scope,
                                            mode=mode, persistent=persistent, timeout=timeout)
        try:
            cls._check_layout(seg)
        except BaseException:
            seg.close()
            raise
        self = object.__new__(cls)
        for attr, value in (("_shm", seg), ("name", name), ("created", seg.created),
                            ("lock", RobustLock(seg.buf, LOCK_AT))):
            object.__setattr__(self, attr, value)
        return self

    def __setattr__(self, attr: str, value: Any) -> None:
        if attr in self._layout:
            object.__setattr__(self, attr, value)  # the field's descriptor writes the segment
            return
        fields = ", ".join(self._layout)
        hint = difflib.get_close_matches(attr, list(self._layout), n=1)
        if attr in _HANDLE_ATTRS:
            raise AttributeError(f"{type(self).__name__}.{attr} is set by attach() and is read-only")
        raise AttributeError(f"{type(self).__name__} has no field {attr!r} (its fields are {fields})"
                             + (f"; did you mean {hint[0]!r}?" if hint else ""))

    @classmethod
    def _initialise(cls, buf: memoryview) -> None:
        spec = cls._spec.encode()
        struct.pack_into("<QI", buf, 0, cls._fingerprint, len(spec))
        buf[len(buf) - len(spec) :] = spec
        RobustLock.initialise(buf, LOCK_AT)
        for f in cls._layout.values():
            if f.default is not None:
                f.type.set(buf, f.offset, f.default)

    @classmethod
    def _check_layout(cls, seg: SharedMemory) -> None:
        buf = seg.buf
        fingerprint, spec_len = struct.unpack_from("<QI", buf, 0)
        if fingerprint == cls._fingerprint and seg.size == cls._size:
            return
        stored = "(unreadable)"
        if FIELDS_AT <= seg.size - spec_len < seg.size:
            stored = bytes(buf[seg.size - spec_len :]).decode("utf-8", "replace")
        raise ProtocolError(
            f"struct {seg.name!r} has a different layout: it was created as [{stored}] "
            f"but {cls.__name__} declares [{cls._spec}]"
        )

    # -- the handle -----------------------------------------------------
    def _fields_buf(self) -> memoryview:
        return self._shm.buf

    def _int_field(self, field: str) -> _Field:
        f = self._layout.get(field)
        if f is None:
            raise AttributeError(f"{type(self).__name__} has no field {field!r}")
        if not isinstance(f.type, _Int) or isinstance(f.type, _Bool):
            raise TypeError(f"field {field!r} is {f.type.spec}; atomic operations need an integer field")
        return f

    def add(self, field: str, delta: int) -> int:
        """Atomically add ``delta`` (wrapping like the C type); returns the value before."""
        f = self._int_field(field)
        return _native.atomic_add(self._shm.buf, f.offset, delta, size=f.type.size, signed=f.type.signed)

    def exchange(self, field: str, value: int) -> int:
        """Atomically store ``value``; returns the value before."""
        f = self._int_field(field)
        return _native.atomic_exchange(self._shm.buf, f.offset, value, size=f.type.size, signed=f.type.signed)

    def compare_exchange(self, field: str, expected: int, desired: int) -> bool:
        """Store ``desired`` if the field equals ``expected``; True if it swapped."""
        f = self._int_field(field)
        return _native.atomic_compare_exchange(self._shm.buf, f.offset, expected, desired,
                                               size=f.type.size, signed=f.type.signed)[0]

    @classmethod
    def layout(cls) -> str:
        """The layout spec, e.g. ``"hits:i64,load:f64,owner:str32"``."""
        return cls._spec

    def as_dict(self) -> dict[str, Any]:
        return {name: (list(v) if isinstance(v := getattr(self, name), memoryview) else v)
                for name in self._layout}

    @property
    def closed(self) -> bool:
        return self._shm.closed

    def close(self) -> None:
        self.lock.close()
        self._shm.close()

    def unlink(self) -> None:
        self._shm.unlink()

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.closed:
            return f"<{type(self).__name__} {self.name!r} closed>"
        return f"<{type(self).__name__} {self.name!r} {self.as_dict()}>"


class _StructSegment(SharedMemory):
    KIND = "struct"


def _struct_details(buf: memoryview) -> dict[str, Any]:
    spec_len = struct.unpack_from("<I", buf, 8)[0]
    if not FIELDS_AT <= len(buf) - spec_len < len(buf):
        return {"layout": "(corrupt)"}
    return {"layout": bytes(buf[len(buf) - spec_len :]).decode("utf-8", "replace")}


register_details("struct", _struct_details)
