"""The snapshot flush loop (issue 28, item 12): a slow flush delays the next one, never overlaps
it (a Faust timer logged "Timer flush_redis is overlapping" for each slow flush), and the wait
after a slow flush grows so that flushing takes at most FLUSH_SHARE of the time, up to `most`.
On a fake clock: what is checked is the waits the loop asks for, not how long anything took."""

from __future__ import annotations

import types
from typing import Any, cast

import pytest

from stream.worker import snapshots
from stream.worker.snapshots import FLUSH_SHARE, flush_forever


class Enough(Exception):
    """Ends the loop after a few flushes."""


class World:
    """A fake clock, the waits asked for, and a flusher whose flushes take `takes` seconds."""

    def __init__(self, takes: list[float]) -> None:
        self.now = 0.0
        self.takes = takes
        self.waits: list[float] = []
        self.running = 0
        self.flushes = 0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        assert self.running == 0, "a wait began while a flush ran"
        self.waits.append(seconds)
        self.now += seconds

    async def flush(self) -> None:
        if self.flushes == len(self.takes):
            raise Enough
        self.running += 1
        self.now += self.takes[self.flushes]
        self.flushes += 1
        self.running -= 1


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    made = World([])
    monkeypatch.setattr(snapshots, "asyncio", types.SimpleNamespace(sleep=made.sleep))
    monkeypatch.setattr(snapshots, "time", types.SimpleNamespace(monotonic=made.monotonic))
    return made


async def test_the_wait_after_a_flush_grows_with_it_up_to_most(world: World) -> None:
    world.takes = [0.01, 0.05, 0.3, 0.01]
    with pytest.raises(Enough):
        await flush_forever(cast(Any, world), interval=0.2, most=1.0)
    assert world.flushes == 4
    assert world.waits == pytest.approx(
        [0.2, 0.2, max(0.2, 0.05 / FLUSH_SHARE), min(1.0, 0.3 / FLUSH_SHARE), 0.2]
    )


async def test_flushes_follow_one_another(world: World) -> None:
    world.takes = [0.5] * 5
    with pytest.raises(Enough):
        await flush_forever(cast(Any, world), interval=0.2, most=2.0)
    # Every flush ran alone (`sleep` checks it) and flushing took at most FLUSH_SHARE of the
    # time once the waits had grown.
    assert world.flushes == 5
    assert 5 * 0.5 / world.now <= FLUSH_SHARE + 0.05
