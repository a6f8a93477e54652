"""Pair factories and helpers shared by the transport tests."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor

from interproc import sockets
from interproc.pipes import NamedPipe, pipe


def accept_and_connect(listener, connect):
    """Connect while another thread accepts (a named-pipe client waits for its greeting)."""
    with ThreadPoolExecutor(1) as ex:
        fut = ex.submit(listener.accept, timeout=10)
        client = connect()
        server = fut.result(timeout=15)
    return client, server


def anon_pipe_pair():
    r, w = pipe()
    return w, r


def named_pipe_pair_factory(name_factory, mode="message"):
    def make():
        name = name_factory()
        srv = NamedPipe.serve(name, mode=mode)
        try:
            return accept_and_connect(srv, lambda: NamedPipe.connect(name, timeout=10))
        finally:
            srv.close()  # connected instances outlive the listening name

    return make


def short_tmpdir() -> str:
    """A short directory for AF_UNIX paths (107-byte limit)."""
    return tempfile.mkdtemp(prefix="ipt-", dir="/tmp")


def unix_pair_factory(directory):
    counter = iter(range(10**6))

    def make():
        lst = sockets.listen_unix(os.path.join(directory, f"s{next(counter)}"))
        try:
            return accept_and_connect(lst, lambda: sockets.connect_unix(lst.address[len("unix://"):], timeout=10))
        finally:
            lst.close()

    return make


def tcp_pair_factory(**kw):
    client_kw = {k: kw.pop(k) for k in ("client_ssl",) if k in kw}

    def make():
        lst = sockets.listen_tcp("127.0.0.1", 0, **kw)
        try:
            port = int(lst.address.rsplit(":", 1)[1])
            ckw = dict(kw)
            ckw.pop("ssl", None)
            if "client_ssl" in client_kw:
                ckw["ssl"] = client_kw["client_ssl"]
            return accept_and_connect(lst, lambda: sockets.connect_tcp("127.0.0.1", port, timeout=10, **ckw))
        finally:
            lst.close()

    return make


def make_tls_contexts(directory: str):
    """(server_ctx, client_ctx) from a throwaway self-signed certificate, or None without openssl."""
    if shutil.which("openssl") is None:
        return None
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=30,
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(cert)
    return server, client


# A relay process: accepts two clients and forwards every message between
# them, both ways, so a pair built on it has a real process in the middle.
RELAY = """
import sys, threading, interproc
lst = interproc.listen(sys.argv[1])
print("ADDRESS", lst.address, flush=True)
a = lst.accept(timeout=30)
b = lst.accept(timeout=30)
lst.close()

def pump(src, dst):
    try:
        for msg in src:
            dst.send(msg)
    except interproc.ChannelClosed:
        pass
    finally:
        dst.close()   # the end of one side is passed on as the end of the other

threads = [threading.Thread(target=pump, args=p) for p in ((a, b), (b, a))]
for t in threads:
    t.start()
for t in threads:
    t.join()
"""


def relay_pair_factory(spawn, address="tcp://127.0.0.1:0"):
    """Pairs whose messages go through another process (see RELAY)."""
    from conftest import wait_for_line

    import interproc

    def make():
        proc = spawn(RELAY, address)
        real = wait_for_line(proc, "ADDRESS").split()[1]
        a = interproc.connect(real, timeout=10)
        b = interproc.connect(real, timeout=10)
        return a, b

    return make
