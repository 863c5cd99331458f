"""Which partition a person's records go to: identities resolved at ingest, through Redis.

The worker keeps a person's state in the lead's home partition (`stream.scoring.identity`)
and applies that partition's records in acceptance order (`stream/worker/order.py`). For
that, every record of a person must be keyed by the same id:

- an event with a user id is keyed by the user id (a known lead lives there);
- an event with only an anonymous id or an email is keyed by the user id that this cookie or
  address was identified as, if any, else by the anonymous id (else the normalised email).

The directory is those identifications: `identify(userId, anonymousId, traits.email)` claims
the cookie and the address for the user, in Redis, *before* the identify is acknowledged, so
a pixel hit or an email webhook that comes after it lands in the lead's partition, behind the
identify. The first user to claim a cookie keeps it (the worker reports a second one as an
identity conflict). Emails are stored as the keyed digest the worker uses, never in clear.

Redis unavailable: the record is keyed by its own id and the worker forwards it to the lead
(`leads.events.by_lead`); the lead is still right, only the order against the lead's other
events is then not guaranteed. Counted in `leadstream_collector_directory_errors_total`.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import Counter
from redis.exceptions import RedisError

from stream.scoring.identity import email_digest, normalise_email

log = logging.getLogger(__name__)
DIRECTORY_ERRORS = Counter(
    "leadstream_collector_directory_errors_total",
    "Requests keyed without the identity directory because Redis failed (see "
    "stream/collector/directory.py): their records reach the lead by a forward.",
)
TTL_SECONDS = 400 * 86400  # a claim outlives any cookie a browser keeps
CACHE_SIZE = 100_000


def own_key(event: Mapping[str, Any]) -> str:
    """The key of an event by its own ids: user id, else anonymous id, else email."""
    user, anon, email = event.get("user_id"), event.get("anonymous_id"), event.get("email")
    if user:
        return str(user)
    if anon:
        return str(anon)
    return normalise_email(str(email))


def person_ids(event: Mapping[str, Any], secret: str) -> list[str]:
    """The directory names of an event's cookie and address: `a:<anonymous id>`, `e:<digest>`."""
    out = []
    if event.get("anonymous_id"):
        out.append(f"a:{event['anonymous_id']}")
    if event.get("email"):
        out.append(f"e:{email_digest(str(event['email']), secret)}")
    return out


def plan_keys(
    events: Sequence[Mapping[str, Any]], known: Mapping[str, str], secret: str
) -> tuple[list[str], dict[str, str]]:
    """(the key of each event, the claims to make), in request order, without I/O.

    `known` holds the claims already made (name → user id). An identify with a user id claims
    its cookie and address unless they are claimed; a later event of the same request sees
    that claim.
    """
    claimed = dict(known)
    new: dict[str, str] = {}
    keys: list[str] = []
    for event in events:
        user = event.get("user_id")
        if user:
            if event.get("type") == "identify":
                for name in person_ids(event, secret):
                    if name not in claimed:
                        claimed[name] = new[name] = str(user)
            keys.append(str(user))
            continue
        owner = next((claimed[n] for n in person_ids(event, secret) if n in claimed), None)
        keys.append(owner or own_key(event))
    return keys, new


class Directory:
    """Keys events by person; claims cookies and addresses at identify (in Redis)."""

    def __init__(self, redis_url: str, prefix: str, secret: str, *, timeout: float = 0.5):
        self.redis_url = redis_url
        self.prefix = f"{prefix}id:"
        self.secret = secret
        self.timeout = timeout
        self._redis: aioredis.Redis | None = None
        # Claims never change once made (SET NX), so found ones are cached; misses are not.
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._last_warning = 0.0

    def _client(self) -> aioredis.Redis:
        if self._redis is None:
            self._redis = aioredis.Redis.from_url(
                self.redis_url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
            )
        return self._redis

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def keys(self, events: Sequence[Mapping[str, Any]]) -> list[bytes]:
        """The Kafka key of each event, claiming what identifies make known, in order."""
        try:
            return await self._keys(events)
        except (RedisError, OSError, TimeoutError) as exc:
            DIRECTORY_ERRORS.inc()
            now = time.monotonic()
            if now - self._last_warning > 10.0:
                self._last_warning = now
                log.warning(
                    "identity directory unavailable (%s): keying by the events' own ids", exc
                )
            return [own_key(e).encode() for e in events]

    async def _keys(self, events: Sequence[Mapping[str, Any]]) -> list[bytes]:
        names = sorted({n for e in events for n in person_ids(e, self.secret)})
        known = {n: self._cache[n] for n in names if n in self._cache}
        missing = [n for n in names if n not in known]
        if missing:
            values = await self._client().mget([self.prefix + n for n in missing])
            for name, value in zip(missing, values, strict=True):
                if value is not None:
                    known[name] = _text(value)
                    self._remember(name, known[name])
        keys, claims = plan_keys(events, known, self.secret)
        if claims:
            pipe = self._client().pipeline(transaction=False)
            for name, user in claims.items():
                pipe.set(self.prefix + name, user, nx=True, ex=TTL_SECONDS)
            await pipe.execute()
            # A claim another collector made meanwhile wins; it is read (and cached) next time.
        return [key.encode() for key in keys]

    def _remember(self, name: str, user: str) -> None:
        self._cache[name] = user
        self._cache.move_to_end(name)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class AcceptStamps:
    """Acceptance stamps, microseconds, strictly increasing within this process: the order
    the worker applies one person's records in across topics (`stream/worker/order.py`)."""

    def __init__(self) -> None:
        self.last = 0

    def next(self) -> int:
        now = time.time_ns() // 1000
        self.last = now if now > self.last else self.last + 1
        return self.last
