"""Lead and account snapshots in Redis, for the lead API: coalesced, written every 200 ms.

Both input paths feed it: the per-record path as it processes, the batch path after each
checkpoint's commit (a snapshot never shows a score the worker could still lose).
"""

from __future__ import annotations

import asyncio
import logging

from stream.scoring import AccountState, LeadState
from stream.scoring.account import account_engagement
from stream.settings import Settings
from stream.store.redis import LeadStore
from stream.worker.pipeline import Pipeline
from stream.worker.processor import Emit

log = logging.getLogger("leadstream.worker")
FLUSH_SECONDS = 0.2


class RedisFlusher:
    """Coalesces snapshot writes: a lead scored 50 times in 200 ms is written once."""

    def __init__(self, settings: Settings, scoring: Pipeline):
        self.settings = settings
        self.scoring = scoring
        self.dirty: dict[str, LeadState] = {}
        self.moved: set[str] = set()  # leads whose stage changed since the last flush
        self.ledgers: dict[str, list[bytes]] = {}  # JSON entries, oldest first
        self.absorbed: list[tuple[str, str]] = []
        self.dirty_accounts: dict[str, AccountState] = {}
        self.store: LeadStore | None = None

    def mark(self, lead_id: str, state: LeadState) -> None:
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

    async def flush(self) -> None:
        if not self.dirty and not self.ledgers and not self.absorbed and not self.dirty_accounts:
            return
        if self.store is None:
            self.store = LeadStore.from_url(self.settings.redis_url, self.settings.redis_prefix)
        dirty, self.dirty = self.dirty, {}
        moved, self.moved = self.moved, set()
        ledgers, self.ledgers = self.ledgers, {}
        absorbed, self.absorbed = self.absorbed, []
        accounts, self.dirty_accounts = self.dirty_accounts, {}
        snaps = [self.scoring.snapshot(state) for state in dirty.values()]
        model = self.scoring.model
        account_snaps = [
            {
                "account_id": a.account_id,
                "mqa": a.mqa,
                "engagement": account_engagement(a, model),
                "fit": a.fit,
                "contacts": a.contacts,
            }
            for a in accounts.values()
        ]
        try:
            await self.store.write(snaps, {k: v[::-1] for k, v in ledgers.items()}, moved)
            await self.store.write_accounts(account_snaps)
            for visitor_id, lead_id in absorbed:
                await self.store.absorb(visitor_id, lead_id)
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


async def flush_forever(flusher: RedisFlusher, interval: float = FLUSH_SECONDS) -> None:
    """Flush, then wait `interval`: a slow flush (Redis busy, thousands of dirty leads) delays
    the next one instead of overlapping it (a Faust timer logged "Timer flush_redis is
    overlapping" for every flush that took longer than its interval)."""
    while True:
        await asyncio.sleep(interval)
        await flusher.flush()
