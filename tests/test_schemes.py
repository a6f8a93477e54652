"""The scheme records of interproc._schemes are the one table every dispatcher reads."""

from __future__ import annotations

import importlib

import pytest

import interproc
import interproc.aio
from interproc import _address, _schemes
from interproc.cli import _objects
from test_foundation import LAYERS, PUBLIC_MODULES, _layer_of

TRANSPORT = 2  # index in LAYERS


@pytest.mark.parametrize("scheme", sorted(_schemes.SCHEMES))
def test_every_record_resolves_and_sits_in_a_known_layer(scheme):
    record = _schemes.SCHEMES[scheme]
    for which in ("connect", "listen", "aio_connect", "aio_listen"):
        if getattr(record, which) is not None:
            assert callable(record.entry(which))
    for module in record.modules():
        top = module.removeprefix("interproc.").split(".")[0]
        layer = _layer_of(top)
        assert layer is not None, f"{module} (named by {scheme}://) is in no layer of the layering test"
        assert layer >= TRANSPORT or top in LAYERS[1]
    for module in record.kinds:
        assert module in _objects.KIND_MODULES  # interproc ls / gc see its objects


def test_dispatchers_read_the_records(monkeypatch):
    calls = []

    def fake_connect(addr, *, timeout=None, **kw):
        calls.append(("connect", addr.host, addr.port, timeout, kw))
        return "a channel"

    async def fake_aio_connect(addr, *, timeout=None, **kw):
        calls.append(("aio_connect", addr.host))
        return "an async channel"

    import sys
    import types

    mod = types.ModuleType("fake_scheme_mod")
    mod.connect, mod.aio_connect = fake_connect, fake_aio_connect
    monkeypatch.setitem(sys.modules, "fake_scheme_mod", mod)
    monkeypatch.setitem(_schemes.SCHEMES, "fake+tcp", _schemes.Scheme(
        "fake+tcp", "host", "fake_scheme_mod:connect", aio_connect="fake_scheme_mod:aio_connect"))
    assert interproc.connect("fake+tcp://example:7?x=1", timeout=3, y=2) == "a channel"
    assert calls[-1] == ("connect", "example", 7, 3, {"y": 2})
    import asyncio

    assert asyncio.run(interproc.aio.connect("fake+tcp://h:1")) == "an async channel"
    with pytest.raises(ValueError, match="cannot be listened on"):
        interproc.listen("fake+tcp://h:1")
    with pytest.raises(ValueError, match="unknown scheme"):
        interproc.connect("nosuch://x")


def test_register_checks_the_form():
    with pytest.raises(ValueError, match="form"):
        _schemes.register(_schemes.Scheme("bad", "url"))


@pytest.mark.parametrize("modname", PUBLIC_MODULES)
def test_connect_address_is_not_public(modname):
    mod = importlib.import_module(modname)
    assert "connect_address" not in mod.__all__ and "listen_address" not in mod.__all__
    assert _address.SCHEMES is _schemes.SCHEMES
