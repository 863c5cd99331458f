"""Snapshot marks (issue 28, item 8): the lead API tells a snapshot Redis lost (503) from an
unknown lead (404) until the worker has written its leads back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
import redis.asyncio as aioredis

from stream.settings import Settings
from stream.store.marks import SnapshotGuard
from stream.store.redis import LeadStore
from tests.store.test_redis_durability import api_client, snap

pytestmark = pytest.mark.integration


@pytest.fixture
async def marked(settings: Settings) -> AsyncIterator[Settings]:
    """The test's settings with the lead API checking snapshot marks, on two partitions."""
    yield settings.replace(snapshot_marks=True, partitions=2)


async def lose_everything(client: aioredis.Redis, prefix: str) -> None:
    """What a Redis restarted without its data shows this test: none of its keys."""
    keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)


def held(partitions: Mapping[int, list[dict[str, Any]]]) -> dict[int, Any]:
    return {p: (lambda leads=leads: iter(leads)) for p, leads in partitions.items()}


async def test_lead_api_tells_lost_from_unknown_until_the_worker_restores(
    marked: Settings, redis_client: aioredis.Redis
) -> None:
    store = LeadStore(redis_client, marked.redis_prefix)
    guard = SnapshotGuard(store, marked.partitions)
    async with await api_client(marked) as api:
        # No worker has marked anything yet: "not found" cannot be told from "lost".
        resp = await api.get("/v1/leads/u1")
        body = await resp.json()
        assert resp.status == 503 and resp.headers["Retry-After"].isdigit()
        assert body["reason"] == "snapshots_lost" and body["partitions"] == [0, 1]

        worker_state = {0: [snap("u1", "mql", 50)], 1: [snap("u2", "mql", 40)]}
        assert await guard.check(held(worker_state)) == {0: 1, 1: 1}
        assert await guard.check(held(worker_state)) == {}  # marked: one MGET, nothing written
        assert (await api.get("/v1/leads/u1")).status == 200
        resp = await api.get("/v1/leads/nobody")
        assert resp.status == 404 and (await resp.json())["lead_id"] == "nobody"

        # Redis loses its data: every lead would be 404; the API says 503 instead.
        await lose_everything(redis_client, marked.redis_prefix)
        for path in ("/v1/leads/u1", "/v1/leads/u1/ledger", "/v1/leads?stage=mql"):
            resp = await api.get(path)
            assert resp.status == 503, path
            assert (await resp.json())["reason"] == "snapshots_lost", path

        # Meanwhile the worker scored u2 again (newer than its state being restored).
        await store.write([snap("u2", "sql", 70)])
        # A worker owning partition 0 only: partition 1 is still unconfirmed.
        assert await guard.check(held({0: worker_state[0]})) == {0: 1}
        resp = await api.get("/v1/leads/nobody")
        assert resp.status == 503 and (await resp.json())["partitions"] == [1]
        # The owner of partition 1 restores it; u2's newer snapshot stays.
        assert await guard.check(held({1: worker_state[1]})) == {1: 0}
        assert (await api.get("/v1/leads/nobody")).status == 404
        assert (await (await api.get("/v1/leads/u2")).json())["stage"] == "sql"
        resp = await api.get("/v1/leads?stage=mql")
        assert [lead["lead_id"] for lead in (await resp.json())["leads"]] == ["u1"]


async def test_without_snapshot_marks_a_missing_lead_stays_404(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    """The default until the worker writes marks: nothing changes for a deployment."""
    assert not settings.snapshot_marks
    async with await api_client(settings) as api:
        assert (await api.get("/v1/leads/nobody")).status == 404
