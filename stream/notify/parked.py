"""The persisted delivery schedule: handoffs parked in Redis until their next attempt is due.

A delivery whose quick in-process retries failed is *parked*: the handoff record (value, key,
headers, where it came from), the attempts made and the next due time are written to Redis, and
from then on the Kafka offset may be committed. Key layout (prefix = LEADSTREAM_REDIS_PREFIX):

    <prefix>schedule:<lane>:<sink>   sorted set: member ce_id, score = due time (Unix seconds)
    <prefix>parked:<sink>:<ce_id>    JSON of one `Parked` entry

Both are written and removed together (MULTI). One sorted set per lane (fast = P1, routine =
P2/P3) so that due P1 entries are taken by their own workers and never wait behind routine
ones; one per sink so that a sink's backlog is one ZCARD. A notifier *takes* due entries by
moving their score forward by a lease (one Lua call), so several notifiers share the work
without taking the same entry; a notifier that dies leaves its leases to expire, and the
entries are due again. Who actually delivers is still decided by the in-flight claim and the
delivered marker of `idempotency.py`.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from stream.notify.sinks import Handoff

log = logging.getLogger(__name__)

# Due members (score <= now), at most `limit`, each moved to the lease score; returns them.
_TAKE = """
local ids = redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('zadd', KEYS[1], 'XX', ARGV[2], id) end
return ids
"""
# Put a taken member back at `due`, only if it still carries our lease.
_GIVE_BACK = """
local score = redis.call('zscore', KEYS[1], ARGV[1])
if score and math.abs(tonumber(score) - tonumber(ARGV[2])) < 0.000001 then
  return redis.call('zadd', KEYS[1], 'XX', ARGV[3], ARGV[1])
end
return 0
"""


@dataclass(frozen=True)
class Parked:
    """One (handoff, sink) delivery waiting for its next scheduled attempt."""

    sink: str
    ce_id: str
    lane: str
    """fast (P1) or routine: which sorted set, and which workers."""
    step: int
    """Index in the schedule of the wait now running (0 = the first delay)."""
    attempts: int
    """Attempts made so far, the quick ones included."""
    due: float
    """Unix time of the next attempt."""
    parked_at: float
    """Unix time the delivery was first parked."""
    last_error: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    @classmethod
    def of(
        cls,
        handoff: Handoff,
        sink: str,
        lane: str,
        *,
        step: int,
        attempts: int,
        due: float,
        parked_at: float,
        last_error: str,
    ) -> Parked:
        return cls(
            sink=sink,
            ce_id=handoff.ce_id,
            lane=lane,
            step=step,
            attempts=attempts,
            due=due,
            parked_at=parked_at,
            last_error=last_error[:2000],
            topic=handoff.topic,
            partition=handoff.partition,
            offset=handoff.offset,
            key=handoff.key,
            value=handoff.value,
            headers=tuple(handoff.headers),
        )

    def handoff(self) -> Handoff:
        """The handoff again, decoded exactly as from the topic."""
        return Handoff.from_record(
            topic=self.topic,
            partition=self.partition,
            offset=self.offset,
            key=self.key,
            value=self.value,
            headers=list(self.headers),
        )

    def to_json(self) -> bytes:
        raw = asdict(self)
        raw["key"] = None if self.key is None else _b64(self.key)
        raw["value"] = _b64(self.value)
        raw["headers"] = [[k, _b64(v)] for k, v in self.headers]
        return orjson.dumps(raw)

    @classmethod
    def from_json(cls, raw: bytes) -> Parked:
        """Decode an entry; ValueError saying what is wrong if it is not one."""
        try:
            data = orjson.loads(raw)
            key = data.pop("key")
            return cls(
                **{
                    **data,
                    "key": None if key is None else base64.b64decode(key),
                    "value": base64.b64decode(data["value"]),
                    "headers": tuple((str(k), base64.b64decode(v)) for k, v in data["headers"]),
                }
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a parked entry: {type(exc).__name__}: {exc}") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def next_delay(
    schedule: Sequence[float], step: int, retry_after: float | None, max_retry_after: float
) -> float:
    """The wait before the attempt after `step`: the schedule's, or a longer Retry-After."""
    wait = schedule[step]
    if retry_after is not None:
        wait = max(wait, min(retry_after, max_retry_after))
    return wait


@dataclass(frozen=True)
class Taken:
    """A due entry this notifier leased: deliver it before `lease` or someone else may."""

    lane: str
    sink: str
    ce_id: str
    lease: float


@dataclass(frozen=True)
class Backlog:
    """One sink's schedule as the metrics see it."""

    parked: int
    overdue_seconds: float
    """now − the due time of the most overdue entry; 0 when nothing is overdue."""


class ParkingLot:
    """Redis store of parked deliveries; every time is an argument (tests use a fake clock)."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    def schedule_key(self, lane: str, sink: str) -> str:
        return f"{self._prefix}schedule:{lane}:{sink}"

    def entry_key(self, sink: str, ce_id: str) -> str:
        return f"{self._prefix}parked:{sink}:{ce_id}"

    async def park(self, entry: Parked) -> None:
        """Write (or move along) an entry: data and due time together."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self.entry_key(entry.sink, entry.ce_id), entry.to_json())
            pipe.zadd(self.schedule_key(entry.lane, entry.sink), {entry.ce_id: entry.due})
            await pipe.execute()

    async def remove(self, lane: str, sink: str, ce_id: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.schedule_key(lane, sink), ce_id)
            pipe.delete(self.entry_key(sink, ce_id))
            await pipe.execute()

    async def exists(self, sink: str, ce_id: str) -> bool:
        return bool(await self._redis.exists(self.entry_key(sink, ce_id)))

    async def get_raw(self, sink: str, ce_id: str) -> bytes | None:
        """The entry's JSON (`Parked.from_json`), or None if there is none."""
        raw = await self._redis.get(self.entry_key(sink, ce_id))
        return None if raw is None else bytes(raw)

    async def take(
        self, lane: str, sink: str, *, now: float, lease_seconds: float, limit: int
    ) -> list[Taken]:
        """Lease up to `limit` entries due at `now` (their score moves to now + lease)."""
        lease = round(now + lease_seconds, 3)
        ids = await self._redis.eval(
            _TAKE, 1, self.schedule_key(lane, sink), repr(now), repr(lease), max(1, limit)
        )
        return [Taken(lane, sink, _text(i), lease) for i in ids]

    async def holds(self, taken: Taken) -> bool:
        """The entry is still there under our lease (nobody else moved it on meanwhile)."""
        score = await self._redis.zscore(self.schedule_key(taken.lane, taken.sink), taken.ce_id)
        return score is not None and abs(float(score) - taken.lease) < 1e-6

    async def give_back(self, taken: Taken, due: float) -> None:
        """Undo a lease we will not use (stopping): the entry is due at `due` again."""
        await self._redis.eval(
            _GIVE_BACK,
            1,
            self.schedule_key(taken.lane, taken.sink),
            taken.ce_id,
            repr(taken.lease),
            repr(due),
        )

    async def backlog(
        self, lanes: Iterable[str], sinks: Iterable[str], now: float
    ) -> dict[str, Backlog]:
        """Per sink: entries parked (both lanes) and how overdue the most overdue one is."""
        pairs = [(lane, sink) for sink in sinks for lane in lanes]
        async with self._redis.pipeline(transaction=False) as pipe:
            for lane, sink in pairs:
                pipe.zcard(self.schedule_key(lane, sink))
                pipe.zrange(self.schedule_key(lane, sink), 0, 0, withscores=True)
            replies = await pipe.execute()
        out: dict[str, Backlog] = {}
        for i, (_, sink) in enumerate(pairs):
            count, first = int(replies[2 * i]), replies[2 * i + 1]
            overdue = max(0.0, now - float(first[0][1])) if first else 0.0
            before = out.get(sink, Backlog(0, 0.0))
            out[sink] = Backlog(before.parked + count, max(before.overdue_seconds, overdue))
        return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
