"""``await aio.connect(addr)`` / ``await aio.listen(addr)``: dispatch by scheme.

Parsing is :func:`interproc._address.parse` (the one parser); the entry
points are the ``aio_connect`` / ``aio_listen`` of the scheme's record in
:mod:`interproc._schemes`, imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._address import parse
from .._schemes import SCHEMES

if TYPE_CHECKING:  # the public names, whichever module defines them
    from . import AsyncChannel, AsyncListener


async def connect(address: str, *, timeout: float | None = None, **options: Any) -> AsyncChannel:
    """Open an AsyncChannel to ``address`` (``NotFound`` at once unless ``timeout=``)."""
    addr = parse(address)
    return await SCHEMES[addr.scheme].entry("aio_connect")(addr, timeout=timeout, **options)


async def listen(address: str, **options: Any) -> AsyncListener:
    """Listen at ``address``; the listener's ``address`` has the real port/path."""
    addr = parse(address)
    return await SCHEMES[addr.scheme].entry("aio_listen")(addr, **options)
