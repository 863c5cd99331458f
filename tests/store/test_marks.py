"""Snapshot marks (issue 28, item 8): the lead API tells a snapshot Redis lost (503) from an
unknown lead (404) until the worker has written its leads back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterator, Mapping
from typing import Any

import pytest
import redis.asyncio as aioredis

from stream.settings import Settings
from stream.store.marks import Holding, Restored, SnapshotGuard
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


class FakeHeld:
    """A worker's state as the guard reads it: leads by partition, an assignment epoch."""

    def __init__(self, partitions: Mapping[int, list[dict[str, Any]]]) -> None:
        self.partitions = dict(partitions)
        self.epoch = 0
        self.during_read: list[Any] = []  # run while the guard reads the first lead

    def holding(self) -> Holding | None:
        return Holding(self.epoch, frozenset(self.partitions))

    def leads(self, partitions: Collection[int]) -> Iterator[Mapping[str, Any]]:
        for p in sorted(partitions):
            for lead in self.partitions[p]:
                for action in self.during_read:
                    action()
                self.during_read = []
                yield lead

    def accounts(self, partitions: Collection[int]) -> Iterator[Mapping[str, Any]]:
        return iter(())


async def test_lead_api_tells_lost_from_unknown_until_the_worker_restores(
    marked: Settings, redis_client: aioredis.Redis
) -> None:
    store = LeadStore(redis_client, marked.redis_prefix)
    worker_state = {0: [snap("u1", "mql", 50)], 1: [snap("u2", "mql", 40)]}
    both = FakeHeld(worker_state)
    async with await api_client(marked) as api:
        # No worker has marked anything yet: "not found" cannot be told from "lost".
        resp = await api.get("/v1/leads/u1")
        body = await resp.json()
        assert resp.status == 503 and resp.headers["Retry-After"].isdigit()
        assert body["reason"] == "snapshots_lost" and body["partitions"] == [0, 1]

        guard = SnapshotGuard(store, marked.partitions, both)
        assert await guard.check() == Restored((0, 1), 2)
        assert await guard.check() == Restored()  # marked: one MGET, nothing written
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
        first = SnapshotGuard(store, marked.partitions, FakeHeld({0: worker_state[0]}))
        assert await first.check() == Restored((0,), 1)
        resp = await api.get("/v1/leads/nobody")
        assert resp.status == 503 and (await resp.json())["partitions"] == [1]
        # The owner of partition 1 restores it; u2's newer snapshot stays.
        second = SnapshotGuard(store, marked.partitions, FakeHeld({1: worker_state[1]}))
        assert await second.check() == Restored((1,), 0)
        assert (await api.get("/v1/leads/nobody")).status == 404
        assert (await (await api.get("/v1/leads/u2")).json())["stage"] == "sql"
        resp = await api.get("/v1/leads?stage=mql")
        assert [lead["lead_id"] for lead in (await resp.json())["leads"]] == ["u1"]


async def test_a_restore_is_not_marked_when_the_assignment_moved_or_redis_lost_it_again(
    marked: Settings, redis_client: aioredis.Redis
) -> None:
    store = LeadStore(redis_client, marked.redis_prefix)
    held = FakeHeld({0: [snap("u1", "mql", 50)], 1: [snap("u2", "lead", 5)]})
    guard = SnapshotGuard(store, marked.partitions, held)

    def rebalance() -> None:
        held.epoch += 1

    held.during_read = [rebalance]
    assert await guard.check() == Restored()  # the read crossed a rebalance: no mark
    assert await guard.marks.missing() == [0, 1]

    async def lose() -> None:
        await lose_everything(redis_client, marked.redis_prefix)

    # Redis loses its data again while the restore writes: the sentinel goes with it.
    lost_again = False

    def flag() -> None:
        nonlocal lost_again
        lost_again = True

    held.during_read = [flag]
    due = guard.due()
    assert due is not None
    holding, keys = due
    await guard.marks.begin([0, 1])
    await lose()  # as if it happened between `begin` and the marks
    assert not await guard.marks.mark_kept(0, 1)
    assert await guard.marks.missing() == [0, 1]
    assert await guard.after(holding, await redis_client.mget(keys)) == Restored((0, 1), 2)
    assert lost_again and await guard.marks.missing() == []


async def test_without_snapshot_marks_a_missing_lead_stays_404(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    """LEADSTREAM_SNAPSHOT_MARKS=false: the lead API never asks for marks."""
    async with await api_client(settings.replace(snapshot_marks=False)) as api:
        assert (await api.get("/v1/leads/nobody")).status == 404


def test_snapshot_marks_are_on_by_default() -> None:
    assert Settings().snapshot_marks
