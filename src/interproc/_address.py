"""Addresses: the one place that parses ``scheme://...`` strings.

    pipe://NAME                    named pipe (interproc.pipes)
    shm://NAME?capacity=64MiB      shared-memory channel
    unix:///PATH                   framed AF_UNIX stream socket
    tcp://HOST:PORT                framed TCP (authkey= or ssl= beyond loopback)
    serial:///dev/ttyUSB0?baudrate=115200
    mailslot://NAME                one-way: connect() gives a write-only channel

Each scheme has one record in :mod:`interproc._schemes` (its connect,
listen and asyncio entry points and its ``ls`` kinds); the module is
imported only when its scheme is used.  Query parameters are passed to the
transport as strings in ``addr.query``; keyword arguments win over them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from typing import Callable
from urllib.parse import parse_qsl, urlsplit

if TYPE_CHECKING:  # for the annotations only; each transport imports its own classes
    from ._channel import Channel, Listener

from ._schemes import SCHEMES as SCHEMES, lookup


@dataclass(frozen=True)
class Address:
    scheme: str
    name: str = ""  # pipe://, shm://, mailslot://
    host: str = ""  # tcp://
    port: int = 0  # tcp://
    path: str = ""  # unix://, serial://
    query: dict[str, str] = field(default_factory=dict)
    text: str = ""

    def __str__(self) -> str:
        return self.text


def parse(text: str) -> Address:
    """Parse an address; ``ValueError`` naming what is wrong with it."""
    if not isinstance(text, str):
        raise TypeError(f"address must be a str, not {type(text).__name__}")
    if "://" not in text:
        raise ValueError(f"address {text!r} has no scheme; expected one of {', '.join(s + '://' for s in SCHEMES)}")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    form = lookup(parts.scheme, text).form
    try:
        query = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query)))
    except ValueError as exc:
        raise ValueError(f"address {text!r} has a malformed query string: {exc}") from None
    if form == "name":
        from ._naming import validate_name

        name = parts.netloc + parts.path
        validate_name(name, f"{scheme}:// name in {text!r}")
        return Address(scheme, name=name, query=query, text=text)
    if form == "host":
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"address {text!r} has a bad port") from None
        if not parts.hostname or port is None:
            raise ValueError(f"address {text!r} must be {scheme}://HOST:PORT")
        return Address(scheme, host=parts.hostname, port=port, query=query, text=text)
    # form "path" (unix:///path, serial:///dev/tty...): an absolute path, no host
    if parts.netloc or not parts.path.startswith("/"):
        raise ValueError(f"address {text!r} must be {scheme}:///ABSOLUTE/PATH (three slashes)")
    return Address(scheme, path=parts.path, query=query, text=text)


def connect(address: str, *, timeout: float | None = None, **options: Any) -> Channel:
    """Open a Channel to ``address``.  ``NotFound`` at once when nothing listens
    at a local address, unless ``timeout=`` is given: then wait that long for a
    listener to appear."""
    addr = parse(address)
    return SCHEMES[addr.scheme].entry("connect")(addr, timeout=timeout, **options)


def listen(address: str, **options: Any) -> Listener:
    """Listen at ``address``; the Listener's ``address`` has the real port/path."""
    addr = parse(address)
    return SCHEMES[addr.scheme].entry("listen")(addr, **options)


def query_options(addr: Address, kw: dict[str, Any], converters: dict[str, Callable[[str], Any]],
                  drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """The keyword arguments of ``addr``'s query, each converted by
    ``converters[key]`` (an unknown key is a ``ValueError``), then ``kw`` on
    top, without the options in ``drop`` (the other end's)."""
    opts: dict[str, Any] = {}
    for key, value in addr.query.items():
        convert = converters.get(key)
        if convert is None:
            raise ValueError(f"address {addr} has the unknown option {key!r}")
        opts[key] = convert(value)
    opts.update(kw)
    for key in drop:
        opts.pop(key, None)
    return opts
