"""Snapshot marks: whether Redis holds every lead snapshot of a partition, or lost them.

The lead API serves snapshots from Redis, so a lead Redis has no snapshot of is either unknown
(404) or lost with Redis's data (no AOF, a lost disk, a FLUSHALL, a failover to an empty
replica). Only the worker knows which leads exist (its state table, kept in Kafka), so after it
has written every lead of a partition it sets that partition's mark, `<prefix>snapshots:<n>`.
A Redis that loses its data loses the marks with it: the lead API then answers 503 for a lead
it cannot find (LEADSTREAM_SNAPSHOT_MARKS), and the worker, finding a mark of a partition it
owns missing, writes all that partition's leads again and sets the mark (`SnapshotGuard`).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from stream.store.redis import LeadStore

MARK = "snapshots"
BATCH = 500  # snapshots per round trip while restoring

Snapshots = Callable[[], Iterable[Mapping[str, Any]]]
"""Every lead snapshot of one partition, read when called (the worker's state table)."""


class SnapshotMarks:
    """The marks of `partitions` partitions, read by the lead API and written by the worker."""

    def __init__(self, store: LeadStore, partitions: int) -> None:
        self.store = store
        self.partitions = partitions

    def key(self, partition: int) -> str:
        return self.store.key(MARK, str(partition))

    async def missing(self, partitions: Iterable[int] | None = None) -> list[int]:
        """The partitions (every one by default) whose mark Redis does not hold."""
        wanted = list(range(self.partitions) if partitions is None else partitions)
        if not wanted:
            return []
        found = await self.store.client.mget([self.key(p) for p in wanted])
        return [p for p, raw in zip(wanted, found, strict=True) if raw is None]

    async def mark(self, partition: int, leads: int) -> None:
        """Every lead of `partition` is in Redis: say so (what and when, for a person)."""
        body = {"partition": partition, "leads": leads, "at": time.time()}
        await self.store.client.set(self.key(partition), orjson.dumps(body))


class SnapshotGuard:
    """The worker's side: put back what a Redis that lost its data no longer holds.

    The worker calls `check` every few seconds (and after each rebalance) with the partitions
    it owns now. One MGET when nothing is missing; otherwise every lead of each unmarked
    partition is written where Redis has no snapshot of it (a lead the worker wrote since the
    loss is newer and stays), then the partition is marked.
    """

    def __init__(self, store: LeadStore, partitions: int, *, batch: int = BATCH) -> None:
        self.marks = SnapshotMarks(store, partitions)
        self.batch = batch

    async def check(
        self,
        leads: Mapping[int, Snapshots],
        accounts: Mapping[int, Snapshots] | None = None,
    ) -> dict[int, int]:
        """Restore and mark each partition of `leads` whose mark is missing; returns the number
        of lead snapshots written back per restored partition (empty: nothing was missing).

        `accounts` (same partitions, the account rollups of the worker's accounts table) are
        written back the same way when given.
        """
        restored: dict[int, int] = {}
        for partition in await self.marks.missing(sorted(leads)):
            written = 0
            for chunk in _chunks(leads[partition](), self.batch):
                written += await self.marks.store.write_missing(chunk)
            if accounts is not None and partition in accounts:
                for chunk in _chunks(accounts[partition](), self.batch):
                    await self.marks.store.write_missing_accounts(chunk)
            await self.marks.mark(partition, written)
            restored[partition] = written
        return restored


def _chunks(items: Iterable[Mapping[str, Any]], size: int) -> Iterable[list[Mapping[str, Any]]]:
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk
