"""SIGKILL the worker at random moments; it must end where an offline replay ends.

A few thousand events of many leads go through the real worker process on the real broker
while it is killed and restarted several times. Afterwards the final state of every lead
(read back from the state table's changelog) and the set of handoff ce_ids must equal what
`leadstream replay` computes from the same events, in the order the worker scored them. Ticks
between a partition's last event and the common evaluation instant are fired offline on the
worker's states (ticks are idempotent), since stream time there stopped early.
"""

from __future__ import annotations

import asyncio
import random
import signal
from pathlib import Path

import pytest

from stream.demo import Processes
from stream.settings import Settings
from stream.topics import Topics
from tests.integration.worker_runs import (
    assert_ends_like_replay,
    drained,
    journeys,
    lags,
    ledger_end,
    until_progress,
)
from tests.kafka_helpers import produce_events

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Checkpoints of at most 500 records, so that a kill soon after the first one lands
    mid-wave."""
    return settings.replace(worker_checkpoint_max=500)


async def test_sigkill_at_random_moments_ends_like_replay(
    settings: Settings, tmp_path: Path
) -> None:
    rng = random.Random(20261128)
    events = journeys(leads=150, events=6000, seed=11)
    topics = Topics.from_settings(settings)
    # Waves split by time, sent one after another: each lead's events arrive in time order.
    waves = [events[i * 1500 : (i + 1) * 1500] for i in range(4)]
    procs = Processes(settings, tmp_path / "logs")
    behind: list[int] = []
    for wave in waves:
        procs.start("worker")
        # One topic, in time order: each partition's stream time then moves with its leads'
        # event times, which is when the worker and replay agree to the letter (the engine's
        # order rule). Events of several topics interleave by arrival; that is covered by
        # the identity and pipeline tests, not compared with replay here.
        before = await ledger_end(settings)
        half = len(wave) // 2
        await produce_events(settings.kafka_bootstrap, topics.events("web"), wave[:half])
        # Kill while it works: once a first batch of this wave has landed, the rest of the wave
        # goes in and the kill follows at a random moment within 0.1 s (a batch is at most 500
        # records), while most of it remains. (With the whole wave sent at once and up to
        # 0.3 s, the batch path sometimes finished it before the kill: nothing to recover.)
        await until_progress(settings, procs, before)
        await produce_events(settings.kafka_bootstrap, topics.events("web"), wave[half:])
        await asyncio.sleep(rng.uniform(0.0, 0.1))
        procs.children["worker"].send_signal(signal.SIGKILL)
        procs.children["worker"].wait()
        behind.append(sum(await lags(settings)))
    # Most kills left work undone: the restarts really had something to recover.
    assert sum(1 for b in behind if b > 0) >= 2, behind
    procs.start("worker")
    try:
        await drained(settings, procs)
    finally:
        procs.stop()

    await assert_ends_like_replay(settings, events, tmp_path)
