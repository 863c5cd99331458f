"""Collector state in Redis, shared by every collector process: transport dedupe, replay guard.

Key layout (prefix = LEADSTREAM_REDIS_PREFIX):

    <prefix>collector:msg:<source>:<message id>     TTL LEADSTREAM_COLLECTOR_DEDUPE_SECONDS
    <prefix>collector:replay:<provider>:<key>       TTL 2 x LEADSTREAM_WEBHOOK_TOLERANCE_SECONDS

(the key: for Mailgun a SHA-256 of the signed timestamp + token, for generic the webhook-id)

Transport dedupe is namespaced by *source* (not write key), so a retry that arrives through
another key of the same source, or at another collector process, or after a restart, is still
recognised; keys of different sources cannot suppress each other's ids (a public browser key
cannot pre-empt a CRM's message ids). It fails open: without Redis the event is produced and
the worker's event-id dedupe inside the lead state still holds.

The replay guard fails closed: a webhook whose token cannot be checked is answered 503 and
the provider retries.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from redis.exceptions import RedisError

from stream.errors import RedisUnavailableError
from stream.metrics import COLLECTOR_DEDUPE_UNAVAILABLE

log = logging.getLogger(__name__)


class SharedDedupe:
    """Message ids already produced, per source, remembered for `ttl_seconds`."""

    def __init__(self, redis: Any, prefix: str, ttl_seconds: float) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl_ms = max(1, int(ttl_seconds * 1000))

    def key(self, namespace: str, message_id: str) -> str:
        return f"{self._prefix}collector:msg:{namespace}:{message_id}"

    async def seen(self, namespace: str, message_ids: Sequence[str]) -> set[str]:
        """The ids of `message_ids` produced before (empty when Redis is unavailable)."""
        if not message_ids:
            return set()
        try:
            found = await self._redis.exists(*(self.key(namespace, m) for m in message_ids))
            if not found:
                return set()
            async with self._redis.pipeline(transaction=False) as pipe:
                for message_id in message_ids:
                    pipe.exists(self.key(namespace, message_id))
                flags = await pipe.execute()
        except (RedisError, OSError) as exc:
            COLLECTOR_DEDUPE_UNAVAILABLE.inc()
            log.warning("transport dedupe unavailable, producing anyway: %r", exc)
            return set()
        return {m for m, flag in zip(message_ids, flags, strict=True) if flag}

    async def remember(self, namespace: str, message_ids: Sequence[str]) -> None:
        """Record ids after Kafka acknowledged them; a Redis failure only costs a duplicate."""
        if not message_ids:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for message_id in message_ids:
                    pipe.set(self.key(namespace, message_id), b"1", px=self._ttl_ms)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            COLLECTOR_DEDUPE_UNAVAILABLE.inc()
            log.warning("transport dedupe not recorded: %r", exc)


class ReplayGuard:
    """Webhook tokens and ids seen within the replay window; a second use is refused."""

    def __init__(self, redis: Any, prefix: str, window_seconds: float) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl_ms = max(1, int(window_seconds * 1000))

    def key(self, provider: str, token: str) -> str:
        return f"{self._prefix}collector:replay:{provider}:{token}"

    async def first_use(self, provider: str, token: str) -> bool:
        """True the first time `token` is seen in the window (and remember it), else False."""
        try:
            key = self.key(provider, token)
            return bool(await self._redis.set(key, b"1", nx=True, px=self._ttl_ms))
        except (RedisError, OSError) as exc:
            raise RedisUnavailableError(f"replay protection unavailable: {exc!r}") from None

    async def forget(self, provider: str, token: str) -> None:
        """Undo `first_use` when the request was not accepted after all (Kafka down: the
        provider retries with the same token, and that retry must pass)."""
        try:
            await self._redis.delete(self.key(provider, token))
        except (RedisError, OSError) as exc:
            log.warning("replay token not released: %r", exc)
