"""The shared Channel conformance suite (tests/channel_checks.py, from the
transports work) run over shm://.  Skipped until that module is present."""

from __future__ import annotations

import pytest

import interproc

channel_checks = pytest.importorskip("channel_checks")


@pytest.fixture
def shm_pair(name_factory):
    def make_pair():
        # 64 MiB rings: the suite's largest message (16 MiB) must fit, since
        # shm:// refuses messages over half the ring instead of streaming them.
        name = name_factory()
        with interproc.listen(f"shm://{name}?capacity=64MiB") as lst:
            a = interproc.connect(f"shm://{name}")
            b = lst.accept(timeout=10)
        return a, b
    return make_pair


@pytest.mark.parametrize("check", channel_checks.CHECKS, ids=[c.__name__ for c in channel_checks.CHECKS])
def test_conformance(shm_pair, check):
    check(shm_pair, duplex=True)
