"""A running worker's Redis loses its data (issue 28, item 8): the lead API never answers 404
for a lead the worker holds; it says 503 until the worker has written the snapshots back,
then 200 again. Both input paths; the Redis is the test's own, killed with SIGKILL and
started again on an empty folder (a dev Redis whose AOF did not have the keys)."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from stream.demo import Processes
from stream.dev.process import free_port
from stream.dev.redis import LocalRedis
from stream.settings import Settings
from stream.store.marks import SnapshotMarks
from stream.store.redis import LeadStore
from stream.topics import Topics
from tests.integration.test_worker import event
from tests.kafka_helpers import produce_events
from tests.store.test_redis_durability import api_client, kill_hard

pytestmark = pytest.mark.integration
LEADS = [f"u-loss-{n}" for n in range(16)]


@pytest.fixture
def own_redis(settings: Settings, tmp_path: Path) -> Iterator[tuple[Settings, LocalRedis]]:
    """The test's settings with a Redis of the test's own."""
    settings = settings.replace(
        dev_dir=str(tmp_path / "dev"),
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
    )
    redis = LocalRedis(settings)
    redis.start()
    redis.wait_ready()
    try:
        yield settings, redis
    finally:
        redis.stop()


async def until(what: str, check: Any, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def test_a_lost_snapshot_is_answered_503_then_rebuilt_never_404(
    own_redis: tuple[Settings, LocalRedis], tmp_path: Path
) -> None:
    settings, redis = own_redis
    assert settings.snapshot_marks  # the default
    procs = Processes(settings, tmp_path / "logs")
    procs.start("worker")
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        store = LeadStore(client, settings.redis_prefix)
        marks = SnapshotMarks(store, settings.partitions)
        await produce_events(
            settings.kafka_bootstrap,
            Topics.from_settings(settings).events("web"),
            [
                event(f"e-{lead}", "web.pricing_view", "2026-03-02T09:00:00Z", user_id=lead)
                for lead in LEADS
            ],
        )

        async def all_there() -> bool:
            procs.check_alive()
            found = [await store.get(lead) for lead in LEADS]
            return all(found) and not await marks.missing()

        await until("every snapshot and every mark in Redis", all_there)

        await client.aclose()
        kill_hard(redis)
        shutil.rmtree(redis.home)  # the AOF did not have the keys: an empty Redis comes back
        redis = LocalRedis(settings)
        redis.start()
        redis.wait_ready()
        client = aioredis.Redis.from_url(settings.redis_url)
        store = LeadStore(client, settings.redis_prefix)

        async with await api_client(settings) as api:

            async def all_served() -> bool:
                procs.check_alive()
                statuses = []
                for lead in LEADS:
                    resp = await api.get(f"/v1/leads/{lead}")
                    assert resp.status in (200, 503), (lead, resp.status, await resp.text())
                    statuses.append(resp.status)
                return set(statuses) == {200}

            await until("the worker to write the lost snapshots back", all_served)
            snap = await (await api.get(f"/v1/leads/{LEADS[0]}")).json()
            assert snap["lead_id"] == LEADS[0] and snap["types"]["web.pricing_view"] > 0
            resp = await api.get("/v1/leads/nobody")  # every partition marked again
            assert resp.status == 404, await resp.text()
    finally:
        procs.stop()
        await client.aclose()
        redis.stop()
