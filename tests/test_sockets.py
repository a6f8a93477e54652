"""interproc.sockets across real processes: TCP, AF_UNIX, UDP, authkey, TLS, addresses."""

from __future__ import annotations

import os
import shutil
import socket
import time

import pytest

import interproc
from conftest import wait_for_line
from interproc import sockets
from transport_helpers import accept_and_connect, short_tmpdir

# An echo server on an address given in argv; prints the listener's address.
ECHO_SERVER = """
import sys, threading, interproc
kw = {"authkey": sys.argv[2].encode()} if len(sys.argv) > 2 else {}
lst = interproc.listen(sys.argv[1], **kw)
print("ADDRESS", lst.address, flush=True)
def serve(ch):
    with ch:
        for msg in ch:
            ch.send(msg)
while True:
    try:
        ch = lst.accept()
    except interproc.InterprocError as exc:
        print("REFUSED", type(exc).__name__, exc, flush=True)
        continue
    threading.Thread(target=serve, args=(ch,), daemon=True).start()
"""


@pytest.fixture
def tmpdir_short():
    d = short_tmpdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def start_echo(spawn, address, authkey=None):
    proc = spawn(ECHO_SERVER, address, *([authkey] if authkey else []))
    return proc, wait_for_line(proc, "ADDRESS").split()[1]


def test_tcp_echo_across_processes_with_real_port(spawn):
    proc, address = start_echo(spawn, "tcp://127.0.0.1:0")
    assert address.startswith("tcp://127.0.0.1:") and not address.endswith(":0")
    with interproc.connect(address, timeout=10) as ch:
        assert not ch.authenticated and not ch.trusted
        for size in (0, 1, 65536, 4 * 1024 * 1024):
            data = os.urandom(size)
            ch.send(data)
            assert ch.recv(timeout=20) == data
        ch.send_obj({"n": [1, 2.5, "x"]})
        assert ch.recv_obj(timeout=10) == {"n": [1, 2.5, "x"]}
        sock = ch._io.sock
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1


def test_authkey_is_mutual(spawn):
    proc, address = start_echo(spawn, "tcp://127.0.0.1:0", authkey="s3cret")
    with interproc.connect(address, timeout=10, authkey=b"s3cret", codec="pickle") as ch:
        assert ch.authenticated and ch.trusted
        ch.send_obj({1, 2, 3})  # pickle is allowed towards an authenticated peer
        assert ch.recv_obj(timeout=10) == {1, 2, 3}
    with pytest.raises(interproc.PermissionDenied, match="refused the authkey"):
        interproc.connect(address, timeout=10, authkey=b"wrong")
    assert "REFUSED PermissionDenied" in wait_for_line(proc, "REFUSED")
    with pytest.raises(interproc.PermissionDenied, match="requires an authkey"):
        interproc.connect(address, timeout=10)


def test_client_with_authkey_refuses_a_server_without_one(spawn):
    """The check is mutual: a server that cannot prove the key is not trusted."""
    proc, address = start_echo(spawn, "tcp://127.0.0.1:0")
    with pytest.raises(interproc.PermissionDenied, match="does not authenticate"):
        interproc.connect(address, timeout=10, authkey=b"key")


def test_pickle_refused_towards_unauthenticated_tcp_peer():
    with pytest.raises(interproc.PermissionDenied, match="pickle"):
        sockets.listen_tcp("127.0.0.1", 0, codec="pickle")
    with sockets.listen_tcp("127.0.0.1", 0) as lst:
        port = int(lst.address.rsplit(":", 1)[1])
        with pytest.raises(interproc.PermissionDenied, match="pickle"):
            sockets.connect_tcp("127.0.0.1", port, codec="pickle")
        c, p = accept_and_connect(lst, lambda: sockets.connect_tcp("127.0.0.1", port))
        with c, p:
            with pytest.raises(interproc.PermissionDenied, match="pickle"):
                p.set_codec("pickle")


def test_refuses_to_listen_beyond_loopback_without_auth():
    for host in ("0.0.0.0", "::"):
        with pytest.raises(interproc.PermissionDenied, match="insecure=True"):
            sockets.listen_tcp(host, 0)
    with sockets.listen_tcp("0.0.0.0", 0, authkey=b"k") as lst:
        assert lst.address.startswith("tcp://0.0.0.0:")
    with sockets.listen_tcp("0.0.0.0", 0, insecure=True):
        pass
    with pytest.raises(interproc.PermissionDenied):
        interproc.listen("tcp://0.0.0.0:0")
    with interproc.listen("tcp://0.0.0.0:0?insecure=1"):
        pass


def test_connect_fails_at_once_then_waits_with_timeout(spawn, tmpdir_short):
    path = os.path.join(tmpdir_short, "late.sock")
    t0 = time.monotonic()
    with pytest.raises(interproc.NotFound):
        interproc.connect(f"unix://{path}")
    with sockets.listen_tcp("127.0.0.1", 0) as lst:
        dead = lst.address
    with pytest.raises(interproc.NotFound):
        interproc.connect(dead)
    assert time.monotonic() - t0 < 5  # neither waited
    spawn("import time, sys\ntime.sleep(0.5)\n" + ECHO_SERVER, f"unix://{path}")
    with interproc.connect(f"unix://{path}", timeout=15) as ch:
        ch.send(b"waited for you")
        assert ch.recv(timeout=10) == b"waited for you"
        creds = ch.peer_credentials
        assert creds.uid == os.getuid() and creds.pid != os.getpid()
        assert ch.trusted  # same uid over AF_UNIX


def test_connect_timeout_to_a_silent_port():
    """A listener that never answers the handshake: connect(timeout=) returns Timeout, not a hang."""
    raw = socket.socket()
    raw.bind(("127.0.0.1", 0))
    raw.listen()
    try:
        t0 = time.monotonic()
        with pytest.raises(interproc.Timeout):
            sockets.connect_tcp("127.0.0.1", raw.getsockname()[1], timeout=0.3)
        assert time.monotonic() - t0 < 5
    finally:
        raw.close()


def test_unix_listener_socket_mode_and_cleanup(tmpdir_short):
    path = os.path.join(tmpdir_short, "m.sock")
    with sockets.listen_unix(path) as lst:
        assert lst.address == f"unix://{path}"
        assert os.stat(path).st_mode & 0o777 == 0o600
        with pytest.raises(interproc.AlreadyExists):
            sockets.listen_unix(path)
    assert not os.path.exists(path)
    # a stale socket file (nobody listening) is replaced
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()
    with sockets.listen_unix(path):
        pass


def test_tls_channel(tmpdir_short):
    from transport_helpers import make_tls_contexts

    ctxs = make_tls_contexts(tmpdir_short)
    if ctxs is None:
        pytest.skip("openssl is not installed")
    server_ctx, client_ctx = ctxs
    with sockets.listen_tcp("0.0.0.0", 0, ssl=server_ctx) as lst:  # TLS counts as protection
        port = int(lst.address.rsplit(":", 1)[1])
        c, p = accept_and_connect(lst, lambda: sockets.connect_tcp("127.0.0.1", port, ssl=client_ctx, timeout=10))
        with c, p:
            assert c.trusted and c.authenticated  # the client verified the server's certificate
            assert not p.trusted  # the server did not ask for a client certificate
            c.send(b"over tls")
            assert p.recv(timeout=10) == b"over tls"
        # a client that does not trust the certificate fails the TLS handshake
        import ssl

        plain = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        plain.load_default_certs()
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as ex:
            fut = ex.submit(lst.accept, timeout=10)
            with pytest.raises(interproc.PermissionDenied, match="TLS"):
                sockets.connect_tcp("127.0.0.1", port, ssl=plain, timeout=10)
            with pytest.raises(interproc.PermissionDenied, match="TLS"):
                fut.result(timeout=15)  # the server side of the failed handshake


def test_message_too_large_on_send():
    with sockets.listen_tcp("127.0.0.1", 0, max_message_size=1000) as lst:
        port = int(lst.address.rsplit(":", 1)[1])
        c, p = accept_and_connect(lst, lambda: sockets.connect_tcp("127.0.0.1", port, max_message_size=1000))
        with c, p:
            with pytest.raises(interproc.MessageTooLarge):
                c.send(b"x" * 1001)
            c.send(b"x" * 1000)  # the channel is still fine
            assert len(p.recv(timeout=10)) == 1000


def test_udp_datagrams():
    with sockets.UdpSocket("127.0.0.1", 0) as a, sockets.UdpSocket("127.0.0.1", 0) as b:
        a.sendto(b"ping", b.address)
        data, sender = b.recvfrom(timeout=5)
        assert (data, sender) == (b"ping", a.address)
        with pytest.raises(interproc.Timeout):
            b.recvfrom(timeout=0.05)
        with pytest.raises(interproc.MessageTooLarge):
            a.sendto(b"x" * 70000, b.address)
    with pytest.raises(interproc.PermissionDenied, match="insecure"):
        sockets.UdpSocket("0.0.0.0", 0)


def test_address_errors():
    with pytest.raises(ValueError, match="unknown scheme"):
        interproc.connect("carrier-pigeon://x")
    with pytest.raises(ValueError, match="TCP|tcp://HOST:PORT"):
        interproc.connect("tcp://nohostport")
    with pytest.raises(ValueError, match="unknown option"):
        interproc.listen("tcp://127.0.0.1:0?colour=red")


def test_send_timeout_when_the_peer_does_not_read(tmpdir_short):
    """A send that cannot finish in time raises Timeout; if half a frame went out, the
    channel is closed so the peer sees the end of the stream, never a corrupt message."""
    with sockets.listen_unix(os.path.join(tmpdir_short, "slow.sock")) as lst:
        c, p = accept_and_connect(lst, lambda: sockets.connect_unix(lst.address[len("unix://"):], timeout=10))
        with c, p:
            c.send(b"first")
            big = b"z" * (8 * 1024 * 1024)
            with pytest.raises(interproc.Timeout):
                for _ in range(20):
                    c.send(big, timeout=0.2)
            assert c.closed  # the timed-out frame was cut: the channel cannot be used again
            with pytest.raises(interproc.ChannelClosed):
                c.send(b"x")
            got = [p.recv(timeout=10)]
            with pytest.raises(interproc.ChannelClosed):
                while True:
                    got.append(p.recv(timeout=10))
            assert got[0] == b"first" and all(m == big for m in got[1:])


def test_send_timeout_before_any_byte_keeps_the_channel(tmpdir_short):
    with sockets.listen_unix(os.path.join(tmpdir_short, "full.sock")) as lst:
        c, p = accept_and_connect(lst, lambda: sockets.connect_unix(lst.address[len("unix://"):], timeout=10))
        with c, p:
            sent = 0
            with pytest.raises(interproc.Timeout):
                while True:  # small frames, until the buffer is full
                    c.send(b"s" * 100, timeout=0.1)
                    sent += 1
            for _ in range(sent):
                assert p.recv(timeout=10) == b"s" * 100
            if c.closed:  # the kernel took part of the last frame: the peer sees the end, not garbage
                with pytest.raises(interproc.ChannelClosed):
                    p.recv(timeout=10)
            else:  # nothing of it went out: the channel goes on
                c.send(b"still usable", timeout=10)
                assert p.recv(timeout=10) == b"still usable"


def test_recv_spin_keeps_messages_whole_and_reports_eof(spawn):
    # recv_spin (opt-in, RPC callers set it): non-blocking reads before a sleep.
    # Small and large frames, with and without a timeout, through the backoff,
    # then the peer's close still reads as ChannelClosed.
    proc, address = start_echo(spawn, "tcp://127.0.0.1:0")
    with interproc.connect(address, timeout=10) as ch:
        ch.recv_spin = 50e-6
        for i, size in enumerate((0, 5, 4096, 70000, 3 * 1024 * 1024, 7) * 3):
            data = os.urandom(size)
            ch.send(data)
            assert ch.recv(timeout=None if i % 2 else 20) == data
        with pytest.raises(interproc.Timeout):
            ch.recv(timeout=0.05)  # nothing comes: the spin gives up, the wait times out
        proc.kill()
        proc.wait(10)
        with pytest.raises(interproc.ChannelClosed):
            ch.recv(timeout=10)
