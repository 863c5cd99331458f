"""LeadStore: the Redis key layout for lead snapshots, ledgers and stage rankings.

Keys (all under the configured prefix, default `leadstream:`):
- `lead:<lead_id>`      string, JSON snapshot of the lead (stage, scores, grade, BANT, route …)
- `ledger:<lead_id>`    list, newest first, JSON ledger entries, capped at LEDGER_CAP
- `stage:<stage>`       sorted set of lead ids by engagement, for "hottest MQLs first"
- `deliveries:<lead_id>` list written by the notifier (its delivery log)
- `account:<account_id>` string, JSON rollup of an account (engagement, MQA, fit, contacts)
- `snapshots:<partition>` string, the worker's mark that Redis holds every snapshot of that
  partition (stream/store/marks.py)
Writes are idempotent (last snapshot wins), so an at-least-once worker can repeat them safely.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping, Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis

from stream.scoring.events import STAGES  # one list of stages, the engine's

LEDGER_CAP = 500
FLUSH_CHUNK = 500  # leads per script call: each call holds Redis for about a millisecond
STAGE_SET = frozenset(STAGES)

# One flush's writes (`LeadStore.flush`). ARGV: prefix, ledger cap; a count of leads, then per
# lead its id, snapshot JSON, stage ('' for none), engagement and moved ('1': out of the other
# stages' rankings); a count of ledgers, then per ledger its lead id, a count and the entries
# (in LPUSH order); a count of accounts, then per account its id and rollup JSON.
_FLUSH = """
local prefix, cap = ARGV[1], tonumber(ARGV[2])
local stages = {__STAGES__}
local i = 3
local n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  local id, stage = ARGV[i], ARGV[i + 2]
  redis.call('SET', prefix .. 'lead:' .. id, ARGV[i + 1])
  if ARGV[i + 4] == '1' then
    for _, other in ipairs(stages) do
      if other ~= stage then redis.call('ZREM', prefix .. 'stage:' .. other, id) end
    end
  end
  if stage ~= '' then redis.call('ZADD', prefix .. 'stage:' .. stage, ARGV[i + 3], id) end
  i = i + 5
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  local key, k = prefix .. 'ledger:' .. ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  local last = i + k - 1
  while i <= last do
    local upto = math.min(i + 999, last)
    redis.call('LPUSH', key, unpack(ARGV, i, upto))
    i = upto + 1
  end
  redis.call('LTRIM', key, 0, cap - 1)
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call('SET', prefix .. 'account:' .. ARGV[i], ARGV[i + 1])
  i = i + 2
end
return 1
""".replace("__STAGES__", ", ".join(f"'{stage}'" for stage in STAGES))


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
        ledgers: Mapping[str, Sequence[Mapping[str, Any] | bytes]] | None = None,
        moved: Container[str] | None = None,
    ) -> None:
        """One pipelined round trip for a batch of leads (see `flush`)."""
        await self.flush(snapshots, ledgers, moved)

    async def flush(
        self,
        snapshots: Iterable[Mapping[str, Any]],
        ledgers: Mapping[str, Sequence[Mapping[str, Any] | bytes]] | None = None,
        moved: Container[str] | None = None,
        accounts: Iterable[Mapping[str, Any]] = (),
        read: Sequence[str] = (),
    ) -> list[Any]:
        """Leads, their ledger entries and account rollups written in one round trip (the
        worker flushes every ~200 ms); the values of the keys `read` are read in the same
        round trip, after the writes (the worker's snapshot marks), and returned.

        The writes go as one script call per `FLUSH_CHUNK` leads (`_FLUSH`), not as commands:
        redis-py packs each command and parses each reply in Python (~35 µs a command on the
        project machine, and a lead takes four or more), while a script call's arguments are
        packed in one go and answered with one integer.

        `moved` names the leads whose stage may have changed since their last write (None:
        any of them): only those are taken out of the other stages' rankings, which would
        otherwise cost most of the work. A ranking entry left behind (a crash between a stage
        change and its write) is dropped when `by_stage` meets it.
        """
        pipe = self.client.pipeline(transaction=False)
        dumps = orjson.dumps
        args: list[bytes | str] = []
        leads = 0
        for snap in snapshots:
            lead_id = str(snap["lead_id"])
            stage = snap.get("stage")
            args += (
                lead_id,
                dumps(snap),
                stage if stage in STAGE_SET else "",
                repr(float(snap.get("engagement") or 0)),
                "1" if moved is None or lead_id in moved else "",
            )
            leads += 1
            if leads == FLUSH_CHUNK:
                self._call(pipe, leads, args, {}, ())
                args, leads = [], 0
        self._call(pipe, leads, args, ledgers or {}, accounts)
        if read:
            pipe.mget(list(read))
        results = await pipe.execute()
        return list(results[-1]) if read else []

    def _call(
        self,
        pipe: Any,
        leads: int,
        args: list[bytes | str],
        ledgers: Mapping[str, Sequence[Mapping[str, Any] | bytes]],
        accounts: Iterable[Mapping[str, Any]],
    ) -> None:
        """Queue one `_FLUSH` call: `leads` leads (five arguments each), then the ledgers and
        the accounts, each section led by its count."""
        dumps = orjson.dumps
        tail: list[bytes | str] = []
        count = 0
        for lead_id, entries in ledgers.items():
            if entries:
                tail += (lead_id, str(len(entries)))
                tail += (e if isinstance(e, bytes) else dumps(e) for e in entries)
                count += 1
        rollups: list[bytes | str] = []
        for snap in accounts:
            rollups += (str(snap["account_id"]), dumps(snap))
        if not leads and not count and not rollups:
            return
        pipe.eval(
            _FLUSH,
            0,
            self.prefix,
            str(LEDGER_CAP),
            str(leads),
            *args,
            str(count),
            *tail,
            str(len(rollups) // 2),
            *rollups,
        )

    async def write_missing(self, snapshots: Sequence[Mapping[str, Any]]) -> int:
        """Write the snapshots Redis has none of, with their stage ranking; returns how many.

        For putting back what a Redis that lost its data forgot: a snapshot the worker wrote
        since then is newer than the state being restored, so it stays (SET NX).
        """
        pipe = self.client.pipeline(transaction=False)
        for snap in snapshots:
            pipe.set(self.key("lead", str(snap["lead_id"])), orjson.dumps(snap), nx=True)
        written = [snap for snap, ok in zip(snapshots, await pipe.execute(), strict=True) if ok]
        pipe = self.client.pipeline(transaction=False)
        for snap in written:
            stage = str(snap.get("stage", ""))
            if stage in STAGES:
                score = float(snap.get("engagement") or 0)
                pipe.zadd(self.key("stage", stage), {str(snap["lead_id"]): score})
        await pipe.execute()
        return len(written)

    async def write_missing_accounts(self, snapshots: Sequence[Mapping[str, Any]]) -> int:
        """`write_missing` for account rollups."""
        pipe = self.client.pipeline(transaction=False)
        for snap in snapshots:
            pipe.set(self.key("account", str(snap["account_id"])), orjson.dumps(snap), nx=True)
        return sum(1 for ok in await pipe.execute() if ok)

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
        await self.absorb_all([(visitor_id, lead_id)])

    async def absorb_all(self, pairs: Sequence[tuple[str, str]]) -> None:
        """`absorb` for many (visitor, lead) pairs, in order, in two round trips: the
        visitors' ledgers are read, then moved in one transaction."""
        if not pairs:
            return
        targets = {lead_id for _visitor_id, lead_id in pairs}
        if any(visitor_id in targets for visitor_id, _lead_id in pairs):
            for visitor_id, lead_id in pairs:  # a chain: each move must see the one before
                await self.absorb_all([(visitor_id, lead_id)])
            return
        pipe = self.client.pipeline(transaction=False)
        for visitor_id, _lead_id in pairs:
            pipe.lrange(self.key("ledger", visitor_id), 0, LEDGER_CAP - 1)
        found = await pipe.execute()
        pipe = self.client.pipeline(transaction=True)
        for (visitor_id, lead_id), entries in zip(pairs, found, strict=True):
            if entries:
                target = self.key("ledger", lead_id)
                pipe.rpush(target, *entries)
                pipe.ltrim(target, 0, LEDGER_CAP - 1)
            pipe.delete(self.key("ledger", visitor_id), self.key("lead", visitor_id))
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
        leads: list[dict[str, Any]] = []
        stale: list[str] = []
        for lead_id, raw in zip(ids, raws, strict=True):
            lead = None if raw is None else orjson.loads(raw)
            if lead is not None and lead.get("stage") == stage:
                leads.append(lead)
            else:
                stale.append(_text(lead_id))
        if stale:  # left behind by a stage change whose write a crash cut off
            await self.client.zrem(self.key("stage", stage), *stale)
        return leads

    async def ping(self) -> bool:
        return bool(await self.client.ping())


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
