"""Three worker processes in one group on 12 partitions, under load, through every kind of
rebalance an operator causes: three start at once, one is SIGKILLed, a fourth joins, one is
stopped with SIGTERM. No worker that was not killed may die or hang, the group must drain, and
the final states and handoff ids must equal an offline `leadstream replay`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.settings import Settings
from stream.topics import Topics, ensure_topics
from tests.integration.worker_runs import (
    Workers,
    assert_ends_like_replay,
    drained,
    journeys,
    lags,
    ledger_end,
    until_progress,
)
from tests.kafka_helpers import produce_events

pytestmark = pytest.mark.integration


async def test_scale_out_and_in_under_load_ends_like_replay(
    settings: Settings, tmp_path: Path
) -> None:
    settings = settings.replace(topic_prefix=f"{settings.topic_prefix}p12.", partitions=12)
    await ensure_topics(settings)
    web = Topics.from_settings(settings).events("web")
    events = journeys(leads=600, events=12_000, seed=16)
    waves = [events[i * 3000 : (i + 1) * 3000] for i in range(4)]
    workers = Workers(settings, tmp_path)
    behind: list[int] = []

    async def send(wave: list[dict[str, object]]) -> None:
        before = await ledger_end(settings)
        await produce_events(settings.kafka_bootstrap, web, wave)
        await until_progress(settings, workers.procs, before)

    try:
        for name in ("w1", "w2", "w3"):  # at once, on topics they have never seen
            workers.start(name)
        await send(waves[0])
        await send(waves[1])
        workers.kill("w2")
        behind.append(sum(await lags(settings)))
        await send(waves[2])
        workers.start("w4")
        await send(waves[3])
        behind.append(sum(await lags(settings)))
        code, took = await workers.terminate("w3")
        assert code == 0, f"w3 ended with {code} after {took:.1f}s; see {tmp_path}/logs/w3.log"
        await drained(settings, workers.procs, timeout=300)
        workers.procs.check_alive()  # w1 and w4 went through every rebalance
    finally:
        workers.procs.stop()
    assert any(b > 0 for b in behind), behind  # the kill and the stop came mid-load

    await assert_ends_like_replay(settings, events, tmp_path)
