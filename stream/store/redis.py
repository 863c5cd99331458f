"""LeadStore: the Redis key layout for lead snapshots, ledgers and stage rankings.

Keys (all under the configured prefix, default `leadstream:`):
- `lead:<lead_id>`      string, JSON snapshot of the lead (stage, scores, grade, BANT, route …)
- `ledger:<lead_id>`    list, newest first, JSON ledger entries, capped at LEDGER_CAP
- `stage:<stage>`       sorted set of lead ids by engagement, for "hottest MQLs first"
- `deliveries:<lead_id>` list written by the notifier (its delivery log)
- `account:<account_id>` string, JSON rollup of an account (engagement, MQA, fit, contacts)
Writes are idempotent (last snapshot wins), so an at-least-once worker can repeat them safely.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis

from stream.scoring.events import STAGES  # one list of stages, the engine's

LEDGER_CAP = 500


class LeadStore:
    def __init__(self, client: aioredis.Redis, prefix: str):
        self.client = client
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str, prefix: str) -> LeadStore:
        return cls(aioredis.Redis.from_url(url), prefix)

    async def close(self) -> None:
        await self.client.aclose()

    def key(self, kind: str, name: str) -> str:
        return f"{self.prefix}{kind}:{name}"

    async def write(
        self,
        snapshots: Iterable[Mapping[str, Any]],
        ledgers: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    ) -> None:
        """One pipelined round trip for a batch of leads (the worker flushes every ~100 ms)."""
        pipe = self.client.pipeline(transaction=False)
        for snap in snapshots:
            lead_id = str(snap["lead_id"])
            pipe.set(self.key("lead", lead_id), orjson.dumps(snap))
            stage = str(snap.get("stage", ""))
            for other in STAGES:
                if other != stage:
                    pipe.zrem(self.key("stage", other), lead_id)
            if stage in STAGES:
                pipe.zadd(self.key("stage", stage), {lead_id: float(snap.get("engagement") or 0)})
        for lead_id, entries in (ledgers or {}).items():
            if entries:
                key = self.key("ledger", lead_id)
                pipe.lpush(key, *(orjson.dumps(e) for e in entries))
                pipe.ltrim(key, 0, LEDGER_CAP - 1)
        await pipe.execute()

    async def write_accounts(self, snapshots: Iterable[Mapping[str, Any]]) -> None:
        """`account:<id>`: the rollup (engagement, MQA, fit, contacts' latest engagement)."""
        pipe = self.client.pipeline(transaction=False)
        for snap in snapshots:
            pipe.set(self.key("account", str(snap["account_id"])), orjson.dumps(snap))
        await pipe.execute()

    async def account(self, account_id: str) -> dict[str, Any] | None:
        raw = await self.client.get(self.key("account", account_id))
        return None if raw is None else dict(orjson.loads(raw))

    async def absorb(self, visitor_id: str, lead_id: str) -> None:
        """An identified visitor: its ledger joins the lead's (as older entries), its own
        snapshot and stage entries go. Idempotent: a repeat finds nothing left to move."""
        source = self.key("ledger", visitor_id)
        entries = await self.client.lrange(source, 0, LEDGER_CAP - 1)
        pipe = self.client.pipeline(transaction=True)
        if entries:
            target = self.key("ledger", lead_id)
            pipe.rpush(target, *entries)
            pipe.ltrim(target, 0, LEDGER_CAP - 1)
        pipe.delete(source, self.key("lead", visitor_id))
        for stage in STAGES:
            pipe.zrem(self.key("stage", stage), visitor_id)
        await pipe.execute()

    async def get(self, lead_id: str) -> dict[str, Any] | None:
        raw = await self.client.get(self.key("lead", lead_id))
        return None if raw is None else dict(orjson.loads(raw))

    async def ledger(self, lead_id: str, offset: int = 0, limit: int = 50) -> list[dict[str, Any]]:
        raw = await self.client.lrange(self.key("ledger", lead_id), offset, offset + limit - 1)
        return [orjson.loads(r) for r in raw]

    async def deliveries(self, lead_id: str, limit: int = 50) -> list[dict[str, Any]]:
        raw = await self.client.lrange(self.key("deliveries", lead_id), 0, limit - 1)
        return [orjson.loads(r) for r in raw]

    async def by_stage(self, stage: str, limit: int = 50) -> list[dict[str, Any]]:
        """Leads in a stage, highest engagement first."""
        ids = await self.client.zrevrange(self.key("stage", stage), 0, limit - 1)
        if not ids:
            return []
        raws = await self.client.mget([self.key("lead", _text(i)) for i in ids])
        return [orjson.loads(r) for r in raws if r is not None]

    async def ping(self) -> bool:
        return bool(await self.client.ping())


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
