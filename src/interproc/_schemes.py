"""One record per address scheme: everything that dispatches on ``scheme://`` reads it.

``interproc.connect`` / ``listen``, ``interproc.aio.connect`` / ``listen``,
``interproc ls`` / ``gc`` (the modules that register listers for a scheme's
named objects) and the layering test all read :data:`SCHEMES`; nothing else
keeps a list of schemes.

Adding a scheme is one line at the bottom of this file::

    register(Scheme("nats", "host", "interproc._nats:connect_address",
                    aio_connect="interproc._nats_aio:connect_address"))

Entry points are ``"module:function"`` strings, imported on first use, so a
record may name a module of any layer (``jsonrpc+tcp`` lives in the protocol
layer) without this module importing it.  The functions take the parsed
:class:`~interproc._address.Address`:

    connect(addr, *, timeout=None, **options) -> Channel
    listen(addr, **options) -> Listener
    async aio_connect(addr, *, timeout=None, **options) -> AsyncChannel
    async aio_listen(addr, **options) -> AsyncListener

``form`` says how :func:`interproc._address.parse` reads the rest of the
address: ``"name"`` (``pipe://NAME``), ``"host"`` (``tcp://HOST:PORT``) or
``"path"`` (``unix:///ABSOLUTE/PATH``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

FORMS = ("name", "host", "path")


@dataclass(frozen=True)
class Scheme:
    name: str
    form: str
    connect: str | None = None
    listen: str | None = None
    aio_connect: str | None = None
    aio_listen: str | None = None
    #: modules whose import registers ``interproc ls`` listers for this scheme's named objects
    kinds: tuple[str, ...] = ()
    summary: str = ""

    def entry(self, which: str) -> Callable[..., Any]:
        """The function for ``which`` (``"connect"``, ``"aio_listen"``...), imported now;
        ``ValueError`` naming what this scheme does not support."""
        target = getattr(self, which)
        if target is None:
            verb = {"connect": "connected to", "listen": "listened on",
                    "aio_connect": "connected to with interproc.aio",
                    "aio_listen": "listened on with interproc.aio"}[which]
            raise ValueError(f"{self.name}:// addresses cannot be {verb}")
        module, _, func = target.partition(":")
        return getattr(importlib.import_module(module), func)

    def modules(self) -> list[str]:
        """Every module this record names (for the layering test)."""
        named = [t.partition(":")[0] for t in (self.connect, self.listen, self.aio_connect, self.aio_listen) if t]
        return named + list(self.kinds)


SCHEMES: dict[str, Scheme] = {}


def register(scheme: Scheme) -> Scheme:
    """Add (or replace) the record for ``scheme.name``."""
    if scheme.form not in FORMS:
        raise ValueError(f"scheme {scheme.name!r}: form must be one of {FORMS}, not {scheme.form!r}")
    SCHEMES[scheme.name.lower()] = scheme
    return scheme


def lookup(name: str, address: str = "") -> Scheme:
    try:
        return SCHEMES[name.lower()]
    except KeyError:
        raise ValueError(f"address {address!r} has the unknown scheme {name!r}; "
                         f"expected one of {', '.join(SCHEMES)}") from None


def kind_modules() -> tuple[str, ...]:
    """The modules ``interproc ls``/``gc`` import for the schemes' named objects."""
    seen: dict[str, None] = {}
    for scheme in SCHEMES.values():
        for module in scheme.kinds:
            seen.setdefault(module)
    return tuple(seen)


_NP, _SK, _AT = "interproc._pipes._named", "interproc._sockets._channel", "interproc._sockets._aio"

register(Scheme("pipe", "name", f"{_NP}:connect_address", f"{_NP}:listen_address",
                "interproc._pipes._aio:connect_address", "interproc._pipes._aio:listen_address", kinds=(_NP,),
                summary="named pipe (interproc.pipes)"))
register(Scheme("unix", "path", f"{_SK}:connect_address", f"{_SK}:listen_address",
                f"{_AT}:connect_address", f"{_AT}:listen_address", summary="framed AF_UNIX stream socket"))
register(Scheme("tcp", "host", f"{_SK}:connect_address", f"{_SK}:listen_address",
                f"{_AT}:connect_address", f"{_AT}:listen_address",
                summary="framed TCP (authkey= or ssl= beyond loopback)"))
register(Scheme("shm", "name", "interproc._shmchannel._channel:connect_address", "interproc._shmchannel._channel:listen_address",
                "interproc._shmchannel._aio:connect_address", "interproc._shmchannel._aio:listen_address",
                kinds=("interproc._shmchannel._channel",), summary="shared-memory channel"))
register(Scheme("serial", "path", "interproc._serial._channel:connect_address", None,
                "interproc._serial._aio:connect_address", None, summary="framed serial line"))
register(Scheme("mailslot", "name", "interproc._mailslot:connect_address", None,
                "interproc._mailslot._aio:connect_address", None, kinds=("interproc._mailslot",),
                summary="one-way: connect() gives a write-only channel"))
register(Scheme("jsonrpc+tcp", "host", "interproc._rpc._lines:connect_address", "interproc._rpc._lines:listen_address",
                summary="plain newline-delimited JSON-RPC 2.0 over TCP (interproc.rpc)"))
register(Scheme("jsonrpc+unix", "path", "interproc._rpc._lines:connect_address", "interproc._rpc._lines:listen_address",
                summary="plain newline-delimited JSON-RPC 2.0 over AF_UNIX (interproc.rpc)"))
