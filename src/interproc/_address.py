"""Addresses: the one place that parses ``scheme://...`` strings.

    pipe://NAME                    named pipe (interproc.pipes)
    shm://NAME?capacity=64MiB      shared-memory channel
    unix:///PATH                   framed AF_UNIX stream socket
    tcp://HOST:PORT                framed TCP (authkey= or ssl= beyond loopback)
    serial:///dev/ttyUSB0?baudrate=115200
    mailslot://NAME                one-way: connect() gives a write-only channel

Each scheme maps to a transport module with ``connect_address(addr, **kw)``
and (where it makes sense) ``listen_address(addr, **kw)``; the module is
imported only when its scheme is used.  Query parameters are passed to the
transport as strings in ``addr.query``; keyword arguments win over them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

if TYPE_CHECKING:  # for the annotations only; each transport imports its own classes
    from ._channel import Channel, Listener

# scheme -> module implementing connect_address / listen_address
SCHEMES: dict[str, str] = {
    "pipe": "interproc.pipes",
    "unix": "interproc.sockets",
    "tcp": "interproc.sockets",
    "shm": "interproc._shmchannel",
    "serial": "interproc.serial",
    "mailslot": "interproc.mailslot",
    "jsonrpc+tcp": "interproc._rpc._lines", "jsonrpc+unix": "interproc._rpc._lines",  # plain JSON-RPC lines
}


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
    if scheme not in SCHEMES:
        raise ValueError(f"address {text!r} has the unknown scheme {parts.scheme!r}; expected one of {', '.join(SCHEMES)}")
    try:
        query = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query)))
    except ValueError as exc:
        raise ValueError(f"address {text!r} has a malformed query string: {exc}") from None
    if scheme in ("pipe", "shm", "mailslot"):
        from ._naming import validate_name

        name = parts.netloc + parts.path
        validate_name(name, f"{scheme}:// name in {text!r}")
        return Address(scheme, name=name, query=query, text=text)
    if scheme in ("tcp", "jsonrpc+tcp"):
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"address {text!r} has a bad port") from None
        if not parts.hostname or port is None:
            raise ValueError(f"address {text!r} must be tcp://HOST:PORT")
        return Address(scheme, host=parts.hostname, port=port, query=query, text=text)
    # unix:///path and serial:///dev/tty...: an absolute path, no host
    if parts.netloc or not parts.path.startswith("/"):
        raise ValueError(f"address {text!r} must be {scheme}:///ABSOLUTE/PATH (three slashes)")
    return Address(scheme, path=parts.path, query=query, text=text)


def _module(addr: Address) -> Any:
    return importlib.import_module(SCHEMES[addr.scheme])


def connect(address: str, *, timeout: float | None = None, **options: Any) -> Channel:
    """Open a Channel to ``address``.  ``NotFound`` at once when nothing listens
    at a local address, unless ``timeout=`` is given: then wait that long for a
    listener to appear."""
    addr = parse(address)
    return _module(addr).connect_address(addr, timeout=timeout, **options)


def listen(address: str, **options: Any) -> Listener:
    """Listen at ``address``; the Listener's ``address`` has the real port/path."""
    addr = parse(address)
    mod = _module(addr)
    if not hasattr(mod, "listen_address"):
        raise ValueError(f"{addr.scheme}:// addresses cannot be listened on")
    return mod.listen_address(addr, **options)
