"""Not run by pytest: checked by mypy in CI (.ci/run), to keep the public API's types real.

Each assert_type fails the type check if the API's annotation regresses (to Any,
or to a wrong type); the module is never executed.
"""

from __future__ import annotations

from typing import Annotated

from typing_extensions import assert_type

import interproc
import interproc.aio
from interproc._channel import Channel, Listener
from interproc.shared import Array, Bool, Float64, Int32, Int64, SharedStruct, Str, UInt8


class Stats(SharedStruct):
    hits: Int64 = 0
    load: Float64 = 0.0
    ok: Bool = False
    small: UInt8 = 0
    owner: Annotated[str, Str(32)] = ""
    samples: Annotated[memoryview, Array(Int32, 4)]


def struct_fields() -> None:
    stats = Stats.attach("typing.stats")
    assert_type(stats, Stats)
    assert_type(stats.hits, int)
    assert_type(stats.load, float)
    assert_type(stats.ok, bool)
    assert_type(stats.owner, str)
    assert_type(stats.samples, memoryview)
    assert_type(stats.add("hits", 1), int)
    with Stats.attach("typing.stats") as again:
        assert_type(again, Stats)


def channels() -> None:
    assert_type(interproc.connect("pipe://x"), Channel)
    assert_type(interproc.listen("pipe://x"), Listener)


async def async_channels() -> None:
    assert_type(await interproc.aio.connect("pipe://x"), interproc.aio.AsyncChannel)
    assert_type(await interproc.aio.listen("pipe://x"), interproc.aio.AsyncListener)
