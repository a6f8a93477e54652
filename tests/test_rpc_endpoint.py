"""The blocking Endpoint as the distributed-objects layer will use it: calls in both
directions on one connection, nested (a call made while answering a call), across
real processes."""

from __future__ import annotations

import os
import sys
import time

import interproc
from interproc._rpc._dispatch import Exposed
from interproc._rpc._endpoint import Endpoint

sys.path.insert(0, os.path.dirname(__file__))
from conftest import wait_for_line  # noqa: E402

SERVER = r"""
import sys, time, interproc
from interproc._rpc._dispatch import Exposed
from interproc._rpc._endpoint import Endpoint

class Service:
    ep = None
    def inc(self, x):
        return x + 1
    def twice_then_inc(self, x):
        # calls back into the client while answering the client's call
        return self.ep.call("double", (x,), timeout=10) + 1
    def slow(self):
        time.sleep(0.5)
        return "slow"

lst = interproc.listen(sys.argv[1])
print("ADDRESS", lst.address, flush=True)
svc = Service()
with lst.accept(timeout=30) as ch:
    svc.ep = Endpoint(ch, exposed=Exposed(svc), timeout=10)
    try:
        svc.ep.serve()
    except interproc.ChannelClosed:
        pass
lst.close()
"""


class ClientSide:
    ep: Endpoint | None = None

    def double(self, x):
        # and this callback calls the server again: three levels deep
        assert self.ep is not None
        return 2 * self.ep.call("inc", (x,), timeout=10)


def test_calls_in_both_directions_nested(spawn):
    srv = spawn(SERVER, "tcp://127.0.0.1:0")
    address = wait_for_line(srv, "ADDRESS").split()[1]
    side = ClientSide()
    ch = interproc.connect(address, timeout=10)
    ep = side.ep = Endpoint(ch, exposed=Exposed(side), timeout=10)
    try:
        t0 = time.monotonic()
        for x in range(50):
            assert ep.call("twice_then_inc", (x,)) == 2 * (x + 1) + 1
        per_call = (time.monotonic() - t0) / 50
        # nested calls are read by the thread that holds the reader role: no
        # promoter delay (a millisecond or more) on each level
        assert per_call < 0.5  # a bound against a hang, not a benchmark
        # a slow call on one side does not hold up a nested exchange
        slow = ep.submit("slow")
        assert ep.call("twice_then_inc", (1,)) == 5
        assert not slow.done()
        assert slow.result() == "slow"
    finally:
        ep.close()
    srv.wait(10)
