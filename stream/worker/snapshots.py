"""Lead and account snapshots in Redis, for the lead API: coalesced, written every 200 ms
(up to every 2 s while flushes are slow: a draining worker).

The worker feeds it after each checkpoint's commit (a snapshot never shows a score the worker
could still lose). With
LEADSTREAM_SNAPSHOT_MARKS every flush also reads the snapshot marks of the partitions the
worker holds, in the same round trip as its writes, and writes back every lead of a partition
whose mark Redis lost (stream/store/marks.py): the lead API answers 503 meanwhile, not 404.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

from redis.exceptions import RedisError

from stream.pipeline.core import Pipeline
from stream.pipeline.processor import Emit
from stream.pipeline.shadow import SHADOW_BYTES, is_shadow
from stream.scoring import AccountState, LeadState, Model
from stream.scoring.account import account_engagement
from stream.settings import Settings
from stream.store.marks import Held, Holding, SnapshotGuard
from stream.store.redis import LeadStore
from stream.worker.stores import Stores

log = logging.getLogger("leadstream.worker")
FLUSH_SECONDS = 0.2
FLUSH_MAX_SECONDS = 2.0  # the longest a snapshot waits for its flush under load
FLUSH_SHARE = 0.2  # of the time, at most, spent flushing (the wait grows with the flush)
READ_CHUNK = 500  # store rows read per RocksDB iterator while restoring (none kept across awaits)


class RedisFlusher:
    """Coalesces snapshot writes: a lead scored 50 times in 200 ms is written once."""

    def __init__(self, settings: Settings, scoring: Pipeline, held: Held | None = None):
        self.settings = settings
        self.scoring = scoring
        self.held = held
        self.dirty: dict[str, LeadState] = {}
        self.moved: set[str] = set()  # leads whose stage changed since the last flush
        self.ledgers: dict[str, list[bytes]] = {}  # JSON entries, oldest first
        self.absorbed: list[tuple[str, str]] = []
        self.dirty_accounts: dict[str, AccountState] = {}
        self.store: LeadStore | None = None
        self.guard: SnapshotGuard | None = None

    def mark(self, lead_id: str, state: LeadState) -> None:
        if not is_shadow(lead_id):  # a shadow model's state is never a lead's snapshot
            self.dirty[lead_id] = state

    def mark_account(self, account: AccountState) -> None:
        self.dirty_accounts[account.account_id] = account

    def absorb(self, visitor_id: str, lead_id: str) -> None:
        """The visitor's snapshot goes, its ledger joins the lead's (after the next flush)."""
        self.dirty.pop(visitor_id, None)
        self.absorbed.append((visitor_id, lead_id))

    def add(self, emit: Emit) -> None:
        """A processed record's ledger entries and stage changes."""
        for key, entry in emit.ledger:
            self.ledgers.setdefault(key.decode(), []).append(entry)
        for key, _value, _headers in emit.handoffs:
            self.moved.add(key.decode())

    def _open(self) -> LeadStore:
        if self.store is None:
            settings = self.settings
            self.store = LeadStore.from_url(settings.redis_url, settings.redis_prefix)
            if settings.snapshot_marks and self.held is not None:
                self.guard = SnapshotGuard(self.store, settings.partitions, self.held)
        return self.store

    async def flush(self) -> None:
        store = self._open()
        due = None if self.guard is None else self.guard.due()
        if (
            due is None
            and not self.dirty
            and not self.ledgers
            and not self.absorbed
            and not self.dirty_accounts
        ):
            return
        dirty, self.dirty = self.dirty, {}
        moved, self.moved = self.moved, set()
        ledgers, self.ledgers = self.ledgers, {}
        absorbed, self.absorbed = self.absorbed, []
        accounts, self.dirty_accounts = self.dirty_accounts, {}
        snapshot = self.scoring.snapshot
        snaps = [snapshot(state) for state in dirty.values()]
        model = self.scoring.model
        account_snaps = [account_snapshot(a, model) for a in accounts.values()]
        try:
            found = await store.flush(
                snaps,
                {k: v[::-1] for k, v in ledgers.items()},
                moved,
                account_snaps,
                read=() if due is None else due[1],
            )
            await store.absorb_all(absorbed)
        except Exception as exc:  # noqa: BLE001 - Redis down must not stop scoring
            log.warning("Redis write failed (%s); will retry with the next flush", exc)
            for lead_id, state in dirty.items():
                self.dirty.setdefault(lead_id, state)
            self.moved |= moved
            for lead_id, entries in ledgers.items():
                self.ledgers.setdefault(lead_id, [])[:0] = entries
            self.absorbed[:0] = absorbed
            for account_id, account in accounts.items():
                self.dirty_accounts.setdefault(account_id, account)
            return
        if due is not None and self.guard is not None:
            try:
                await self.guard.after(due[0], found)
            except RedisError as exc:
                log.warning("restoring lost snapshots failed (%s); the next flush tries again", exc)


def account_snapshot(account: AccountState, model: Model) -> dict[str, Any]:
    """An account's rollup as the lead API serves it (`account:<id>`)."""
    return {
        "account_id": account.account_id,
        "mqa": account.mqa,
        "engagement": account_engagement(account, model),
        "fit": account.fit,
        "contacts": account.contacts,
    }


async def flush_forever(
    flusher: RedisFlusher,
    interval: float = FLUSH_SECONDS,
    most: float = FLUSH_MAX_SECONDS,
) -> None:
    """Flush, then wait: `interval`, or longer when flushes take long (Redis busy, thousands
    of dirty leads while the worker drains a backlog): at most about FLUSH_SHARE of the time
    goes to flushing, and the longer wait coalesces more writes of the same leads. A slow
    flush delays the next one instead of overlapping it."""
    wait = interval
    while True:
        await asyncio.sleep(wait)
        started = time.monotonic()
        await flusher.flush()
        wait = min(most, max(interval, (time.monotonic() - started) / FLUSH_SHARE))


class StoreHeld:
    """The worker's state as the snapshot guard reads it: its partition stores.

    Read a chunk at a time, each with an iterator of its own that is gone before the guard
    awaits: a rebalance may close a store meanwhile, which ends the restore (LookupError)
    instead of reading a closed database.
    """

    def __init__(
        self, stores: Stores, holding: Callable[[], Holding | None], scoring: Pipeline
    ) -> None:
        self.stores = stores
        self.holding = holding
        self.scoring = scoring

    def leads(self, partitions: Collection[int]) -> Iterator[Mapping[str, Any]]:
        snapshot, decode = self.scoring.snapshot, LeadState.decode
        for partition in sorted(partitions):
            for key, value in self._rows(partition, "lead_state"):
                if not key.startswith(SHADOW_BYTES):
                    yield snapshot(decode(value))

    def accounts(self, partitions: Collection[int]) -> Iterator[Mapping[str, Any]]:
        model = self.scoring.model
        for partition in sorted(partitions):
            for _key, value in self._rows(partition, "accounts"):
                yield account_snapshot(AccountState.decode(value), model)

    def _rows(self, partition: int, table: str) -> Iterator[tuple[bytes, bytes]]:
        store = self.stores.open.get(partition)
        after: bytes | None = None
        while True:
            if store is None or self.stores.open.get(partition) is not store:
                raise LookupError(f"partition {partition}'s store was closed")
            rows: Iterator[tuple[bytes, bytes]] = iter(store.tables[table].items(from_key=after))  # type: ignore[arg-type]
            chunk = [(k, v) for k, v in itertools.islice(rows, READ_CHUNK + 1) if k != after]
            del rows
            chunk = chunk[:READ_CHUNK]
            if not chunk:
                return
            yield from chunk
            after = chunk[-1][0]
