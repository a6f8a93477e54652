"""``await aio.connect(addr)`` / ``await aio.listen(addr)``: dispatch by scheme.

Parsing is :func:`interproc._address.parse` (the one parser); this table
names the module whose async ``connect_address`` / ``listen_address``
serve a scheme, imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .._address import parse

if TYPE_CHECKING:  # the public names, whichever module defines them
    from . import AsyncChannel, AsyncListener

ASYNC_SCHEMES: dict[str, str] = {
    "pipe": "interproc.aio._transports",
    "unix": "interproc.aio._transports",
    "tcp": "interproc.aio._transports",
    "mailslot": "interproc.aio._mailslot",
    "shm": "interproc.aio._shm",
    "serial": "interproc._serial_aio",
}


def _module(scheme: str, address: str) -> Any:
    if scheme not in ASYNC_SCHEMES:
        raise ValueError(f"interproc.aio has no asyncio transport for {scheme}:// (address {address!r})")
    return importlib.import_module(ASYNC_SCHEMES[scheme])


async def connect(address: str, *, timeout: float | None = None, **options: Any) -> AsyncChannel:
    """Open an AsyncChannel to ``address`` (``NotFound`` at once unless ``timeout=``)."""
    addr = parse(address)
    return await _module(addr.scheme, address).connect_address(addr, timeout=timeout, **options)


async def listen(address: str, **options: Any) -> AsyncListener:
    """Listen at ``address``; the listener's ``address`` has the real port/path."""
    addr = parse(address)
    mod = _module(addr.scheme, address)
    if not hasattr(mod, "listen_address"):
        raise ValueError(f"{addr.scheme}:// addresses cannot be listened on")
    return await mod.listen_address(addr, **options)
