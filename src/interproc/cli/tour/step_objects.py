"""Tour: distributed objects — a class served by ProgID in this process, a remote
instance driven from another process (methods, properties, interfaces, a callback,
release and ``__del__``), over shm://."""

from __future__ import annotations

import threading
import typing

from . import Step, spawn_child, unique

_deleted = threading.Event()


class IShape(typing.Protocol):
    def area(self) -> float: ...


class IPaint(typing.Protocol):
    def paint(self, color: str) -> None: ...


class Circle:
    def __init__(self, radius: float) -> None:
        self._radius = radius

    @property
    def radius(self) -> float:
        return self._radius

    @radius.setter
    def radius(self, value: float) -> None:
        self._radius = value

    def area(self) -> float:
        return 3.14159 * self._radius ** 2

    def each_quarter(self, visitor: typing.Any) -> list:
        return [visitor.visit(self._radius * q / 4) for q in range(1, 5)]

    def __del__(self) -> None:
        _deleted.set()


def _objects() -> str:
    from ... import objects

    with objects.Server(f"shm://{unique('objects')}", ping_interval=2.0).start() as srv:
        srv.register("Tour.Circle", Circle, interfaces=[IShape])
        with spawn_child(f"{__name__}:client", srv.address) as child:
            got = child.result()
        released = _deleted.wait(5)
    return (f"client process: create('Tour.Circle', 2.0).area() -> {got['area']:.2f}, radius {got['radius']}, "
            f"query_interface(IShape) ok, IPaint -> {got['nointerface']}, a callback ran in the client "
            f"{got['callbacks']}x; close() -> server __del__ {'ran' if released else 'DID NOT run'}; "
            f"{got['calls']} calls at {got['rate']:,.0f}/s")


class Visitor:
    def __init__(self) -> None:
        self.count = 0

    def visit(self, r: float) -> float:
        self.count += 1
        return r


def client(address: str) -> dict:
    import time

    from ... import objects

    with objects.connect(address, timeout=20) as conn:
        c = conn.create("Tour.Circle", 2.0)
        out: dict = {"area": c.area()}
        c.radius = 3.0
        out["radius"] = c.radius
        c.query_interface(IShape).area()
        try:
            c.query_interface(IPaint)
            out["nointerface"] = "granted?!"
        except objects.NoInterface:
            out["nointerface"] = "NoInterface"
        v = Visitor()
        c.each_quarter(v)
        out["callbacks"] = v.count
        n = 2000
        t0 = time.perf_counter()
        for _ in range(n):
            c.area()
        out["calls"], out["rate"] = n, n / (time.perf_counter() - t0)
        c.close()
    return out


STEPS = [Step(95, "distributed objects (COM/DCOM)", _objects)]
