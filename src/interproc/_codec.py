"""Codecs: how Python objects become the bytes of one message.

``json`` is the default, ``msgpack`` is the fast option (optional dependency),
``raw`` passes bytes-like objects through untouched.  ``pickle`` exists only
when asked for by name: unpickling runs arbitrary code, so a channel refuses
it towards a peer that has not been authenticated (see ``Channel.trusted``).
"""

from __future__ import annotations

import json
import pickle
from typing import Any, Callable, NamedTuple

from ._errors import PermissionDenied, ProtocolError


class Codec(NamedTuple):
    name: str
    encode: Callable[[Any], bytes]
    decode: Callable[[bytes], Any]
    needs_trust: bool = False


def _json_encode(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


#: Deepest ``[``/``{`` nesting that :func:`nesting_depth` lets through (the
#: handshake scans its small frames with it before decoding them).
MAX_DEPTH = 200


def nesting_depth(data: bytes, limit: int = MAX_DEPTH) -> int:
    """Deepest ``[``/``{`` nesting of JSON text (strings skipped); stops past ``limit``.

    A byte scan, no recursion: cheap enough for every message (the common
    message without brackets deep enough to matter costs two ``count`` calls).
    """
    if data.count(b"[") + data.count(b"{") <= limit:
        return 0  # cannot be deeper than the number of openers
    depth = deepest = 0
    in_str = escaped = False
    for byte in data:
        if in_str:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_str = False
        elif byte == 0x22:
            in_str = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _json_decode(data: bytes) -> Any:
    # Nesting is bounded by the interpreter's recursion limit: the C scanner
    # counts its depth and raises RecursionError, which is the peer's fault.
    # (A byte scan up front would cost a Python loop per byte on big messages.)
    try:
        return json.loads(bytes(data))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"message is not valid JSON: {exc}") from exc
    except RecursionError:
        raise ProtocolError("message is JSON nested too deeply; refused") from None


def _raw_encode(obj: Any) -> bytes:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return obj  # type: ignore[return-value]
    raise TypeError(f"the raw codec sends bytes-like objects, not {type(obj).__name__}")


def _msgpack() -> Any:
    try:
        import msgpack
    except ImportError as exc:
        raise ImportError("codec 'msgpack' needs the msgpack package: pip install msgpack") from exc
    return msgpack


def _msgpack_encode(obj: Any) -> bytes:
    return _msgpack().packb(obj, use_bin_type=True)


def _msgpack_decode(data: bytes) -> Any:
    mp = _msgpack()
    try:
        # msgpack's own stack bounds nesting (StackError past 1024 levels).
        return mp.unpackb(data, raw=False, strict_map_key=False)
    except (ValueError, mp.ExtraData, mp.FormatError, mp.StackError) as exc:
        raise ProtocolError(f"message is not valid msgpack: {type(exc).__name__} {exc}") from exc
    except (TypeError, RecursionError) as exc:
        # A list or map used as a map key is unhashable in Python.
        raise ProtocolError(f"message is msgpack that has no Python form: {exc}") from exc


def _pickle_decode(data: bytes) -> Any:
    try:
        return pickle.loads(data)
    except Exception as exc:
        raise ProtocolError(f"message is not a valid pickle: {exc}") from exc


CODECS: dict[str, Codec] = {
    "json": Codec("json", _json_encode, _json_decode),
    "msgpack": Codec("msgpack", _msgpack_encode, _msgpack_decode),
    "raw": Codec("raw", _raw_encode, bytes),
    "pickle": Codec("pickle", lambda o: pickle.dumps(o, protocol=5), _pickle_decode, True),
}


def get_codec(name: str | Codec, *, trusted: bool = True) -> Codec:
    """Look a codec up by name; refuse pickle unless the peer is trusted."""
    codec = name if isinstance(name, Codec) else CODECS.get(name)  # type: ignore[arg-type]
    if codec is None:
        raise ValueError(f"unknown codec {name!r}; choose one of {', '.join(CODECS)}")
    if codec.needs_trust and not trusted:
        raise PermissionDenied(
            f"codec {codec.name!r} is refused towards an unauthenticated peer: "
            "unpickling its data could run arbitrary code"
        )
    return codec
