"""Tour: a framed TCP socket with authkey between two processes."""

from __future__ import annotations

import os

from . import Step, spawn_child


def _sockets() -> str:
    from ...sockets import listen_tcp

    key = os.urandom(16)
    with listen_tcp("127.0.0.1", 0, authkey=key) as lst:
        with spawn_child(f"{__name__}:client", lst.address, key.hex()) as child:
            with lst.accept(timeout=20) as ch:
                obj = ch.recv_obj(timeout=20)
                ch.send_obj({"sum": sum(obj["numbers"])})
                reply = child.result()
    return (f"client process sent {obj} over {lst.address} after a mutual HMAC-SHA256 authkey check; "
            f"it got back {reply}")


def client(address: str, key_hex: str) -> dict:
    import interproc

    with interproc.connect(address, authkey=bytes.fromhex(key_hex), timeout=20) as ch:
        ch.send_obj({"numbers": [1, 2, 3, 4]})
        return ch.recv_obj(timeout=20)


STEPS = [Step(70, "socket", _sockets)]
