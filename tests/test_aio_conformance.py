"""The asyncio conformance battery (tests/aio_channel_checks.py) over every
scheme that ``interproc.aio.connect`` serves."""

from __future__ import annotations

import asyncio
import shutil

import pytest

import interproc.aio
import interproc.serial
from aio_channel_checks import AIO_CHECKS, check_close, check_iteration
from interproc import _schemes
from transport_helpers import short_tmpdir

SCHEMES = ["pipe", "unix", "tcp", "tcp-authkey", "shm", "serial", "mailslot"]


def test_every_async_scheme_is_covered():
    served = {name for name, rec in _schemes.SCHEMES.items() if rec.aio_connect}
    assert served <= {s.split("-")[0] for s in SCHEMES}


@pytest.fixture(scope="module")
def unix_dir():
    d = short_tmpdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _pair_factory(scheme, name_factory, unix_dir, cleanup):
    """``async () -> (a, b)``: ``a`` from interproc.aio.connect, ``b`` its peer."""
    if scheme == "serial":
        async def make():
            cable = interproc.serial.pty_pair()
            cleanup.append(cable.close)
            return (await interproc.aio.connect(f"serial://{cable.a}"),
                    await interproc.aio.connect(f"serial://{cable.b}"))
        return make
    if scheme == "mailslot":
        async def make():
            name = name_factory()
            slot = interproc.aio.Mailslot.create(name, 1 << 20)
            cleanup.append(slot.close)
            return await interproc.aio.connect(f"mailslot://{name}"), slot
        return make

    async def make():
        kw = {}
        if scheme == "tcp-authkey":
            kw = {"authkey": b"conformance"}
        address = {"pipe": lambda: f"pipe://{name_factory()}", "unix": lambda: f"unix://{unix_dir}/{name_factory()}",
                   "shm": lambda: f"shm://{name_factory()}"}.get(scheme, lambda: "tcp://127.0.0.1:0")()
        lst = await interproc.aio.listen(address, **kw)
        cleanup.append(lst.close)
        a, b = await asyncio.gather(interproc.aio.connect(lst.address, timeout=10, **kw), lst.accept(timeout=10))
        return a, b
    return make


@pytest.mark.timeout(120)
@pytest.mark.parametrize("check", AIO_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_aio_conformance(scheme, check, name_factory, unix_dir):
    duplex = scheme != "mailslot"
    kw = {}
    if scheme == "mailslot":
        if check is check_iteration:
            pytest.skip("a mailslot's reader never sees its writers close (connectionless, as in Win32)")
    if check.__name__ == "check_boundaries":
        if scheme == "mailslot":
            kw["large"] = 1 << 19
        elif scheme in ("serial", "shm"):
            kw["large"] = 1 << 20  # shm: half the default 4 MiB ring; serial: a slow pty relay
    if scheme == "serial" and check.__name__ == "check_many_in_order":
        kw["count"] = 300  # a pty relay is slow; the point is order under concurrency
    if scheme == "mailslot" and check is check_close:
        kw["peer_sees_close"] = False
    cleanup: list = []

    async def main():
        try:
            await check(_pair_factory(scheme, name_factory, unix_dir, cleanup), duplex=duplex, **kw)
        finally:
            for fn in reversed(cleanup):
                fn()

    asyncio.run(main())
