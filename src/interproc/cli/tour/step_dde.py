"""Tour step: DDE -- a price service, a client with a cold request and a hot link."""

from __future__ import annotations

import time

from . import Step, spawn_child, unique


def _child_client(service: str) -> list:
    """Second process: request ACME (cold), then follow it on a hot link until 103.0 arrives."""
    import threading

    from interproc import dde

    with dde.connect(service, "Stocks", timeout=10) as conv:
        cold = conv.request("ACME")
        seen: list[str] = []
        final = threading.Event()

        def on_hot(item: str, value: str) -> None:
            seen.append(value)
            if value == "103.0":
                final.set()

        link = conv.advise("ACME", hot=True, callback=on_hot)
        conv.poke("Linked", "yes")  # tell the server we are listening
        if not final.wait(20):
            raise RuntimeError(f"the hot link saw only {seen}")
        link.close()
        return [cold, seen, link.dropped]


def run() -> str:
    from interproc import dde

    service = unique("Prices").replace("tour.", "tour-")
    linked = []
    with dde.Server(service) as srv:
        srv.set("Stocks", "ACME", "101.5")
        srv.on_poke = lambda topic, item, value: linked.append(item)
        srv.start()
        with spawn_child(f"{__name__}:_child_client", service) as child:
            deadline = time.monotonic() + 20
            while not linked and time.monotonic() < deadline and child.proc.poll() is None:
                time.sleep(0.02)
            for price in ("102.0", "102.5", "103.0"):
                srv.set("Stocks", "ACME", price)
            cold, seen, dropped = child.result(timeout=30)
    return (f"pid {child.proc.pid}: cold request -> {cold}; hot link got {', '.join(seen)} "
            f"({dropped} superseded value(s) skipped; the last always arrives)")


STEPS = [Step(40, "DDE", run)]
