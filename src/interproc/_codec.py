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


def _json_decode(data: bytes) -> Any:
    try:
        return json.loads(bytes(data))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"message is not valid JSON: {exc}") from exc


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
        return mp.unpackb(data, raw=False, strict_map_key=False)
    except (ValueError, mp.ExtraData, mp.FormatError, mp.StackError) as exc:
        raise ProtocolError(f"message is not valid msgpack: {exc}") from exc


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
