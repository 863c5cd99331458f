"""Delivery log: per lead, the newest delivery outcomes, for the lead API and the CLI.

Key: `<prefix>deliveries:<lead_id>`, a Redis list, newest first, capped (LTRIM) and expiring
30 days after its last write. Each entry is a JSON object:
`{"ce_id", "type", "sink", "status", "attempts", "latency_ms", "duration_ms", "error", "at"}`
with status one of delivered | deduped | parked | exhausted | permanent (parked: an attempt
failed and the next one is on the delivery schedule; `attempts` counts every attempt so far);
latency from the collector's receipt of the triggering event (ce_receivedat) to the entry,
when that header was present.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import orjson

LOG_TTL_SECONDS = 30 * 24 * 3600


@dataclass(frozen=True)
class DeliveryEntry:
    """One settled (handoff, sink) pair."""

    ce_id: str
    type: str
    sink: str
    status: str
    attempts: int
    latency_ms: float | None
    duration_ms: float
    error: str | None
    at: float


class DeliveryLog:
    """Appends entries; reads them back for a lead."""

    def __init__(self, redis: Any, prefix: str, *, size: int = 100) -> None:
        self._redis = redis
        self._prefix = prefix
        self._size = max(1, size)

    def key(self, lead_id: str) -> str:
        return f"{self._prefix}deliveries:{lead_id}"

    async def append(self, lead_id: str, entry: DeliveryEntry) -> None:
        key = self.key(lead_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.lpush(key, orjson.dumps(asdict(entry)))
            pipe.ltrim(key, 0, self._size - 1)
            pipe.expire(key, LOG_TTL_SECONDS)
            await pipe.execute()

    async def read(self, lead_id: str, limit: int = 100) -> list[dict[str, Any]]:
        raw = await self._redis.lrange(self.key(lead_id), 0, limit - 1)
        return [orjson.loads(item) for item in raw]
