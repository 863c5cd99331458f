"""An operator switches `LEADSTREAM_WORKER_INPUT` and back: no lead loses its state.

Both input paths keep their tables in the same compacted changelog topics, in the same record
format, and commit in the same consumer group. Waves of events go through a stream worker,
then a batch worker, then a stream worker again (the last one restores its Faust tables
from its persisted changelog offsets, so it must read what the batch worker wrote); the final
states and handoffs must equal an offline `leadstream replay` of every event.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.demo import Processes
from stream.settings import Settings
from stream.topics import Topics
from tests.integration.worker_runs import assert_ends_like_replay, drained, journeys
from tests.kafka_helpers import produce_events

pytestmark = pytest.mark.integration


async def test_stream_then_batch_then_stream_ends_like_replay(
    settings: Settings, tmp_path: Path
) -> None:
    events = journeys(leads=120, events=2400, seed=23)
    web = Topics.from_settings(settings).events("web")
    paths = ("stream", "batch", "stream")
    size = len(events) // len(paths)
    for n, path in enumerate(paths):
        wave = events[n * size : (n + 1) * size if n < len(paths) - 1 else None]
        procs = Processes(settings.replace(worker_input=path), tmp_path / "logs" / f"{n}-{path}")
        procs.start("worker")
        try:
            await produce_events(settings.kafka_bootstrap, web, wave)
            await drained(settings, procs)
        finally:
            procs.stop()
    await assert_ends_like_replay(settings, events, tmp_path)
