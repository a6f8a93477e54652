"""Tour: RPC — a server object in this process, a proxy in another, over shm://."""

from __future__ import annotations

from . import Step, spawn_child, unique


class Calc:
    def add(self, a: int, b: int) -> int:
        return a + b

    def divide(self, a: float, b: float) -> float:
        return a / b


def _rpc() -> str:
    from ... import rpc

    with rpc.Server(Calc(), f"shm://{unique('rpc')}").start() as srv:
        with spawn_child(f"{__name__}:client", srv.address) as child:
            got = child.result()
    return (f"client process called add(1, 2) -> {got['add']}, a batch of 3 calls -> {got['batch']}, "
            f"divide(1, 0) -> RemoteError {got['error']}; {got['calls']} calls at {got['rate']:,.0f}/s "
            f"over {srv.address.split('?')[0]} ({got['codec']})")


def client(address: str) -> dict:
    import time

    from ... import RemoteError, rpc

    with rpc.connect(address, timeout=20) as p:
        out: dict = {"add": p.add(1, 2), "codec": p.codec}
        with p.batch() as b:
            fs = [b.add(i, i) for i in range(3)]
        out["batch"] = [f.result() for f in fs]
        try:
            p.divide(1, 0)
        except RemoteError as exc:
            out["error"] = exc.remote_type
        n = 2000
        t0 = time.perf_counter()
        for i in range(n):
            p.add(i, 1)
        out["calls"], out["rate"] = n, n / (time.perf_counter() - t0)
    return out


STEPS = [Step(90, "RPC (JSON-RPC 2.0 / msgpack)", _rpc)]
