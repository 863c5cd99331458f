"""Two batch worker processes of one group on 4 partitions, under load: a worker keeps the state
of the partitions it keeps across a rebalance (the assignor gives them back, the loop goes on
where it was; it says so in its log), and the group still ends like an offline replay."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest

from stream.settings import Settings
from stream.topics import Topics, ensure_topics
from stream.worker.stores import TABLES, changelog_topic
from tests.integration import worker_runs
from tests.integration.worker_runs import assert_ends_like_replay, drained, journeys
from tests.kafka_helpers import produce_events

pytestmark = pytest.mark.integration

NUMBERS = [0, 1, 2, 3]
ASSIGNED = re.compile(
    r"assigned partitions \[([\d, ]*)\]: kept \[([\d, ]*)\], restored \[([\d, ]*)\]"
)


def _numbers(text: str) -> list[int]:
    return [int(n) for n in text.split(",") if n.strip()]


class Workers(worker_runs.Workers):
    """The group's workers, and what each logged of its assignments."""

    def assignments(self, name: str) -> list[tuple[list[int], list[int], list[int]]]:
        """Each assignment the worker logged: (partitions, kept, restored)."""
        log = self.tmp_path / "logs" / f"{name}.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        found = [[_numbers(g) for g in m.groups()] for m in ASSIGNED.finditer(text)]
        return [(numbers, kept, restored) for numbers, kept, restored in found]

    async def settled(self, names: list[str], count: dict[str, int], timeout: float = 90.0) -> Any:
        """Until each worker logged at least `count[name]` assignments and the last ones
        cover every partition once; returns them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.procs.check_alive()
            logged = {n: self.assignments(n) for n in names}
            if all(len(logged[n]) >= count[n] for n in names):
                last = {n: logged[n][-1] for n in names}
                if sorted(p for ps, _k, _r in last.values() for p in ps) == NUMBERS:
                    return last
            await asyncio.sleep(0.2)
        raise AssertionError(
            f"no settled assignment within {timeout:.0f}s: see {self.tmp_path}/logs"
        )


async def steady(settings: Settings, events: list[dict[str, Any]], per_second: float) -> None:
    """Send `events` in small chunks at about `per_second`: records are in flight whenever a
    rebalance comes."""
    web = Topics.from_settings(settings).events("web")
    chunk = max(1, int(per_second / 10))
    for i in range(0, len(events), chunk):
        await produce_events(settings.kafka_bootstrap, web, events[i : i + chunk])
        await asyncio.sleep(0.1)


async def test_a_worker_keeps_what_it_keeps_across_rebalances_and_ends_like_replay(
    settings: Settings, tmp_path: Path
) -> None:
    settings = settings.replace(
        topic_prefix=f"{settings.topic_prefix}p4.",
        partitions=4,
        log_level="info",
    )
    changelogs = tuple(changelog_topic(settings.topic_prefix, t) for t in TABLES)
    await ensure_topics(settings, compacted=changelogs)
    events = journeys(leads=200, events=9000, seed=27)
    workers = Workers(settings, tmp_path)
    load: asyncio.Task[None] | None = None
    try:
        workers.start("a")
        first = await workers.settled(["a"], {"a": 1})
        assert first["a"] == (NUMBERS, [], NUMBERS)
        load = asyncio.create_task(steady(settings, events, per_second=300))
        await asyncio.sleep(3)

        # b joins under load: a keeps two partitions, with their state; b restores two.
        workers.start("b")
        joined = await workers.settled(["a", "b"], {"a": 2, "b": 1})
        mine, kept, restored = joined["a"]
        assert len(mine) == 2
        assert (kept, restored) == (mine, [])  # nothing of them read again
        theirs = joined["b"][0]
        assert joined["b"] == (theirs, [], theirs)
        await asyncio.sleep(3)

        # b stops (SIGTERM) under load: a gets its partitions back and keeps its own.
        assert not load.done(), "the load ended before the leave: send more events"
        proc = workers.procs.children.pop("b")
        proc.terminate()
        assert await asyncio.to_thread(proc.wait, 30) == 0
        left = await workers.settled(["a"], {"a": 3})
        assert left["a"] == (NUMBERS, mine, theirs)
        await load
        await drained(settings, workers.procs)
    finally:
        if load is not None:
            load.cancel()
        workers.procs.stop()
    await assert_ends_like_replay(settings, events, tmp_path)
