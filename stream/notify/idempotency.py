"""Idempotency in Redis: a delivered ce_id is never delivered again to the same sink.

Key layout (prefix = LEADSTREAM_REDIS_PREFIX, e.g. `leadstream:`):

    <prefix>delivered:<sink>:<ce_id>   "<unix time>"   SET NX after a 2xx, TTL 30 days
    <prefix>inflight:<sink>:<ce_id>    "<owner token>" SET NX PX while delivering, renewed
                                                         before every attempt, deleted after

The delivered key is what makes redelivery (a restart before the offset commit, a re-drive of a
dead letter, a rebalance) a no-op. The in-flight claim stops two notifier instances from
delivering the same handoff at once while a partition moves between them; it expires by itself
when its owner dies, so the next owner takes over.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

# Delete the claim only if we still own it (it may have expired and been taken over).
_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)
_RENEW = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
)


class Idempotency:
    """Delivered markers and in-flight claims for (sink, ce_id)."""

    def __init__(
        self,
        redis: Any,
        prefix: str,
        *,
        delivered_ttl_seconds: int = 30 * 24 * 3600,
        claim_ttl_seconds: float = 60.0,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._delivered_ttl = delivered_ttl_seconds
        self._claim_ttl_ms = max(1, int(claim_ttl_seconds * 1000))
        self.owner = uuid.uuid4().hex

    def delivered_key(self, sink: str, ce_id: str) -> str:
        return f"{self._prefix}delivered:{sink}:{ce_id}"

    def inflight_key(self, sink: str, ce_id: str) -> str:
        return f"{self._prefix}inflight:{sink}:{ce_id}"

    async def is_delivered(self, sink: str, ce_id: str) -> bool:
        return bool(await self._redis.exists(self.delivered_key(sink, ce_id)))

    async def mark_delivered(self, sink: str, ce_id: str) -> bool:
        """Record success; False if it was already recorded (by another instance)."""
        key = self.delivered_key(sink, ce_id)
        stamp = str(int(time.time()))
        return bool(await self._redis.set(key, stamp, nx=True, ex=self._delivered_ttl))

    async def claim(self, sink: str, ce_id: str) -> bool:
        """Try to become the one instance delivering (sink, ce_id) now."""
        return bool(
            await self._redis.set(
                self.inflight_key(sink, ce_id), self.owner, nx=True, px=self._claim_ttl_ms
            )
        )

    async def renew(self, sink: str, ce_id: str, ttl_seconds: float | None = None) -> bool:
        """Extend our claim (default: the claim TTL); False if we lost it."""
        ttl_ms = self._claim_ttl_ms if ttl_seconds is None else max(1, int(ttl_seconds * 1000))
        return bool(
            await self._redis.eval(_RENEW, 1, self.inflight_key(sink, ce_id), self.owner, ttl_ms)
        )

    async def release(self, sink: str, ce_id: str) -> None:
        await self._redis.eval(_RELEASE, 1, self.inflight_key(sink, ce_id), self.owner)

    async def acquire(self, sink: str, ce_id: str, *, poll: float = 0.25) -> bool:
        """Wait until we hold the claim (True) or another instance has delivered (False).

        Another holder is either delivering right now (then its delivered marker appears) or
        dead (then its claim expires): both end the wait.
        """
        while True:
            if await self.is_delivered(sink, ce_id):
                return False
            if await self.claim(sink, ce_id):
                # Delivered between our check and our claim: nothing to do.
                if await self.is_delivered(sink, ce_id):
                    await self.release(sink, ce_id)
                    return False
                return True
            await asyncio.sleep(poll)
