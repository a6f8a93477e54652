"""The Channel conformance suite over every transport of interproc.pipes and interproc.sockets."""

from __future__ import annotations

import shutil

import pytest

from channel_checks import CHECKS, check_byte_stream
from transport_helpers import (
    anon_pipe_pair,
    make_tls_contexts,
    named_pipe_pair_factory,
    relay_pair_factory,
    short_tmpdir,
    tcp_pair_factory,
    unix_pair_factory,
)


@pytest.fixture(scope="module")
def unix_dir():
    d = short_tmpdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def tls():
    d = short_tmpdir()
    try:
        ctxs = make_tls_contexts(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    if ctxs is None:
        pytest.skip("openssl is not installed, so no test certificate can be made")
    return ctxs


TRANSPORTS = ["pipe", "named-pipe", "unix", "tcp", "tcp-authkey", "tcp-tls", "tcp-via-process", "pipe-via-process"]


@pytest.fixture(params=TRANSPORTS)
def transport(request, name_factory, unix_dir):
    kind = request.param
    if kind.endswith("-via-process"):  # a relay process in the middle: a real process boundary
        spawn = request.getfixturevalue("spawn")
        address = "tcp://127.0.0.1:0" if kind.startswith("tcp") else f"pipe://{name_factory()}"
        return relay_pair_factory(spawn, address), True
    if kind == "pipe":
        return anon_pipe_pair, False
    if kind == "named-pipe":
        return named_pipe_pair_factory(name_factory), True
    if kind == "unix":
        return unix_pair_factory(unix_dir), True
    if kind == "tcp":
        return tcp_pair_factory(), True
    if kind == "tcp-authkey":
        return tcp_pair_factory(authkey=b"conformance"), True
    server_ctx, client_ctx = request.getfixturevalue("tls")
    return tcp_pair_factory(ssl=server_ctx, client_ssl=client_ctx), True


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__ for c in CHECKS])
def test_conformance(transport, check):
    make_pair, duplex = transport
    check(make_pair, duplex=duplex)


def test_named_pipe_byte_mode_is_a_stream(name_factory):
    check_byte_stream(named_pipe_pair_factory(name_factory, mode="byte"))


def test_anonymous_pipe_raw_stream():
    check_byte_stream(anon_pipe_pair)
