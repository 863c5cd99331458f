"""Snapshot marks: whether Redis holds every lead snapshot of a partition, or lost them.

The lead API serves snapshots from Redis, so a lead Redis has no snapshot of is either unknown
(404) or lost with Redis's data (no AOF, a lost disk, a FLUSHALL, a failover to an empty
replica). Only the worker knows which leads exist (its state table, kept in Kafka), so after it
has written every lead of a partition it sets that partition's mark, `<prefix>snapshots:<n>`.
A Redis that loses its data loses the marks with it: the lead API then answers 503 for a lead
it cannot find (LEADSTREAM_SNAPSHOT_MARKS), and the worker, finding a mark of a partition it
owns missing, writes all that partition's leads again and sets the mark (`SnapshotGuard`,
called from every snapshot flush of the worker: stream/worker/snapshots.py).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

import orjson
from redis.exceptions import RedisError

from stream.store.redis import LeadStore

MARK = "snapshots"
RESTORING = "snapshots-restoring"  # + partition: set while a restore runs (see `_MARK_IF_KEPT`)
BATCH = 500  # snapshots per round trip while restoring
log = logging.getLogger("leadstream.worker")

# Set the mark only if the restore's own sentinel survived it: a Redis that lost its data
# again while the restore ran lost the sentinel too, and must not be marked complete.
_MARK_IF_KEPT = """
if redis.call('exists', KEYS[1]) == 1 then
  redis.call('set', KEYS[2], ARGV[1])
  redis.call('del', KEYS[1])
  return 1
end
return 0
"""


class Restored(NamedTuple):
    """What a check put back: the partitions it marked, and the lead snapshots it wrote."""

    partitions: tuple[int, ...] = ()
    leads: int = 0


class Holding(NamedTuple):
    """The partitions a worker holds complete state of, and which assignment that is."""

    epoch: object
    """Equal for as long as the assignment has not changed (compared with ==)."""
    partitions: frozenset[int]


class Held(Protocol):
    """What a worker holds, as the guard reads it (`stream/worker/snapshots.StoreHeld`)."""

    def holding(self) -> Holding | None:
        """None while the worker is rebalancing or restoring its state (nothing to judge)."""

    def leads(self, partitions: Collection[int]) -> Iterable[Mapping[str, Any]]:
        """The snapshot of every lead of `partitions` (more is harmless), read lazily: the
        guard awaits between chunks, and the iteration may raise when the state goes away
        meanwhile (a rebalance), which leaves the partitions unmarked for the next check."""

    def accounts(self, partitions: Collection[int]) -> Iterable[Mapping[str, Any]]:
        """The account rollups of `partitions`, as `leads`."""


class SnapshotMarks:
    """The marks of `partitions` partitions, read by the lead API and written by the worker."""

    def __init__(self, store: LeadStore, partitions: int) -> None:
        self.store = store
        self.partitions = partitions

    def key(self, partition: int) -> str:
        return self.store.key(MARK, str(partition))

    def sentinel(self, partition: int) -> str:
        return self.store.key(RESTORING, str(partition))

    async def missing(self, partitions: Iterable[int] | None = None) -> list[int]:
        """The partitions (every one by default) whose mark Redis does not hold."""
        wanted = list(range(self.partitions) if partitions is None else partitions)
        if not wanted:
            return []
        found = await self.store.client.mget([self.key(p) for p in wanted])
        return [p for p, raw in zip(wanted, found, strict=True) if raw is None]

    async def begin(self, partitions: Iterable[int]) -> None:
        """A restore of `partitions` starts: the sentinel `mark_kept` looks for."""
        pipe = self.store.client.pipeline(transaction=False)
        for p in partitions:
            pipe.set(self.sentinel(p), b"1")
        await pipe.execute()

    async def mark(self, partition: int, leads: int) -> None:
        """Every lead of `partition` is in Redis: say so (what and when, for a person)."""
        await self.store.client.set(self.key(partition), self._body(partition, leads))

    async def mark_kept(self, partition: int, leads: int) -> bool:
        """`mark`, if Redis kept the sentinel of `begin` (it did not lose its data again)."""
        keys = [self.sentinel(partition), self.key(partition)]
        body = self._body(partition, leads)
        return bool(await self.store.client.eval(_MARK_IF_KEPT, 2, *keys, body))

    @staticmethod
    def _body(partition: int, leads: int) -> bytes:
        return orjson.dumps({"partition": partition, "leads": leads, "at": time.time()})


class SnapshotGuard:
    """The worker's side: put back what a Redis that lost its data no longer holds.

    `check` runs with every snapshot flush: `due` names the mark keys to read, the flush reads
    them in its own round trip (so a flush costs no extra one), and `restore` runs only when
    one is missing. Then every lead of each unmarked partition is written where Redis has no
    snapshot of it (a lead the worker wrote since the loss is newer and stays: SET NX), and the
    partition is marked, unless the assignment changed meanwhile or Redis lost its data again.
    """

    def __init__(self, store: LeadStore, partitions: int, held: Held, *, batch: int = BATCH):
        self.marks = SnapshotMarks(store, partitions)
        self.held = held
        self.batch = batch

    def due(self) -> tuple[Holding, list[str]] | None:
        """What this flush must read: the marks of the partitions held now (None: nothing)."""
        holding = self.held.holding()
        if holding is None or not holding.partitions:
            return None
        return holding, [self.marks.key(p) for p in sorted(holding.partitions)]

    async def check(self) -> Restored:
        """`due` and `after` in one go, with a round trip of their own (tests, idle flushes)."""
        due = self.due()
        if due is None:
            return Restored()
        holding, keys = due
        return await self.after(holding, await self.marks.store.client.mget(keys))

    async def after(self, holding: Holding, found: Sequence[object]) -> Restored:
        """Given the marks read for `holding` (in partition order), restore and mark the
        partitions whose mark is missing (nothing to do: an empty `Restored`)."""
        ordered = sorted(holding.partitions)
        missing = [p for p, raw in zip(ordered, found, strict=True) if raw is None]
        if not missing:
            return Restored()
        return await self.restore(holding, missing)

    async def restore(self, holding: Holding, missing: list[int]) -> Restored:
        marks, store = self.marks, self.marks.store
        started = time.monotonic()
        await marks.begin(missing)
        written = 0
        try:
            for chunk in _chunks(self.held.leads(missing), self.batch):
                written += await store.write_missing(chunk)
            for chunk in _chunks(self.held.accounts(missing), self.batch):
                await store.write_missing_accounts(chunk)
        except RedisError:
            raise
        except Exception as exc:  # noqa: BLE001 - the state went away (a rebalance closed it)
            log.warning("restoring the snapshots of %s stopped (%r); trying again", missing, exc)
            return Restored()
        if self.held.holding() != holding:
            log.info("restoring the snapshots of %s crossed a rebalance; trying again", missing)
            return Restored()
        marked = tuple([p for p in missing if await marks.mark_kept(p, written)])
        log.warning(
            "Redis lacked the snapshot marks of partition(s) %s (it lost its data, or this is "
            "its first worker): wrote back %d lead snapshots in %.1fs",
            missing,
            written,
            time.monotonic() - started,
        )
        return Restored(marked, written)


def _chunks(items: Iterable[Mapping[str, Any]], size: int) -> Iterable[list[Mapping[str, Any]]]:
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk
