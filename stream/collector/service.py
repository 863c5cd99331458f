"""The collector's service object: what every handler shares (settings, producer, mapping,
limits, dedupe) and the steps they all end in: records, delivery, dead letters, refusals.

Handlers (`app.py`'s Segment routes, `pixel.py`, `webhooks/`) import this module; it imports
none of them, so the route modules never need `app.py` and nothing imports in a circle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson
from aiohttp import web

from stream.collector.directory import AcceptStamps, Directory
from stream.collector.limits import RateLimiter
from stream.collector.mapping import UNMAPPED, EventMapping
from stream.collector.producer import Record
from stream.collector.segment import Accepted, Outcome, Rejected, Source
from stream.collector.shared import ReplayGuard, SharedDedupe
from stream.deadletters.record import Headers, deadletter_headers
from stream.errors import LeadstreamError
from stream.metrics import (
    COLLECTOR_REFUSALS,
    COLLECTOR_REFUSALS_UNRECORDED,
    DEAD_LETTERS,
    EVENTS_DROPPED,
    EVENTS_RECEIVED,
    EVENTS_UNMAPPED,
)
from stream.scoring.identity import secret_or_dev
from stream.settings import Settings, comma_list
from stream.topics import Topics

STAGE = "collector"
# A refused request, and an event over the size limit, keep this much of their bytes in the
# dead letter, never more.
EXCERPT_BYTES = 1024
# Request headers a refused webhook's dead letter keeps (what a person needs to see why).
_REFUSAL_HEADERS = (
    "Content-Type",
    "Content-Length",
    "Content-Encoding",
    "User-Agent",
    "X-Twilio-Email-Event-Webhook-Signature",
    "X-Twilio-Email-Event-Webhook-Timestamp",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
)


class Producer(Protocol):
    """What the app needs from a producer; EventProducer and the tests' fake provide it."""

    async def send_all(self, records: Sequence[Record]) -> None: ...

    async def send_deadletter(self, raw: bytes, key: bytes | None, headers: Headers) -> None: ...

    async def ping(self) -> bool: ...


@dataclass(frozen=True)
class CollectorOptions:
    """The collector's part of Settings, typed once (tests build it directly)."""

    mapping_path: str = ""
    pixel_cookie: str = ""
    pixel_cookie_days: int = 365
    redirect_hosts: tuple[str, ...] = ()
    sendgrid_public_key: str = ""
    mailgun_signing_key: str = ""
    generic_webhook_secret: str = ""
    webhook_tolerance_seconds: float = 300.0
    dedupe_seconds: float = 24 * 3600.0
    produce_timeout_seconds: float = 10.0
    cors_origins: tuple[str, ...] = ()
    """Allowed browser origins; ("*",) = any origin, without credentials."""
    body_timeout_seconds: float = 30.0
    refused_deadletters_per_minute: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> CollectorOptions:
        return cls(
            mapping_path=settings.mapping_path,
            pixel_cookie=settings.pixel_cookie,
            pixel_cookie_days=settings.pixel_cookie_days,
            redirect_hosts=tuple(h.lower() for h in comma_list(settings.redirect_allow_hosts)),
            sendgrid_public_key=settings.sendgrid_public_key,
            mailgun_signing_key=settings.mailgun_signing_key,
            generic_webhook_secret=settings.generic_webhook_secret,
            webhook_tolerance_seconds=settings.webhook_tolerance_seconds,
            dedupe_seconds=settings.collector_dedupe_seconds,
            produce_timeout_seconds=settings.produce_timeout_seconds,
            cors_origins=tuple(o.rstrip("/") for o in comma_list(settings.cors_origins)),
            body_timeout_seconds=settings.body_timeout_seconds,
            refused_deadletters_per_minute=settings.refused_deadletters_per_minute,
        )


class Collector:
    """Per-app state shared by the handlers: settings, producer, mapping, limits, dedupe."""

    def __init__(
        self,
        settings: Settings,
        producer: Producer,
        mapping: EventMapping,
        options: CollectorOptions,
        clock: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.producer = producer
        self.mapping = mapping
        self.options = options
        self.topics = Topics.from_settings(settings)
        self.write_keys = settings.parsed_write_keys()
        self.limiter = RateLimiter(settings.rate_limit_per_second)
        self.directory = Directory(
            settings.redis_url, settings.redis_prefix, secret_or_dev(settings.identity_secret)
        )
        self.stamps = AcceptStamps()
        # Refused signatures: `per_minute` dead letters per client address, a minute's burst.
        per_minute = options.refused_deadletters_per_minute
        self.refusal_budget = RateLimiter(per_minute / 60.0, capacity=max(1.0, per_minute))
        self.now = clock
        self.redis: Any = None
        self.dedupe: SharedDedupe | None = None
        self.replay: ReplayGuard | None = None

    def attach_redis(self, redis: Any) -> None:
        """Use `redis` for transport dedupe and replay protection (shared by all collectors)."""
        prefix = self.settings.redis_prefix
        self.redis = redis
        self.dedupe = SharedDedupe(redis, prefix, self.options.dedupe_seconds)
        self.replay = ReplayGuard(redis, prefix, 2 * self.options.webhook_tolerance_seconds)

    def source(self, write_key: str | None) -> Source | None:
        """The source of a write key, or None when the key is unknown."""
        if write_key is None or write_key not in self.write_keys:
            return None
        name, kind = self.write_keys[write_key]
        return Source(name, kind, write_key)

    async def records(
        self, outcomes: Sequence[Outcome], source: Source, keys: Sequence[bytes] | None = None
    ) -> list[Record]:
        """Kafka records of the outcomes: retried message ids are left out (transport dedupe).

        `keys`: one per accepted outcome, from the identity directory (default: each event's
        own key). Each record carries its acceptance stamp (`accepted_at`), which orders one
        person's records across topics in the worker.
        """
        assert self.dedupe is not None, "attach_redis first"
        ids = [o.message_id for o in outcomes if isinstance(o, Accepted) and o.message_id]
        ids = list(dict.fromkeys(ids))
        seen = await self.dedupe.seen(dedupe_namespace(source), ids)
        records: list[Record] = []
        in_request: set[str] = set()
        accepted = iter(keys or ())
        for outcome in outcomes:
            if isinstance(outcome, Accepted):
                key = next(accepted, outcome.key)
                message_id = outcome.message_id
                if message_id is not None:
                    if message_id in in_request or message_id in seen:
                        continue
                    in_request.add(message_id)
                topic = self.topics.events(outcome.event["channel"])
                stamp = [("accepted_at", str(self.stamps.next()).encode())]
                records.append(Record(topic, key, orjson.dumps(outcome.event), stamp))
            elif isinstance(outcome, Rejected):
                value, extra = self._bounded(outcome.raw, self.settings.max_event_bytes)
                headers = deadletter_headers(
                    outcome.error.reason, STAGE, str(outcome.error), extra=extra
                )
                records.append(Record(self.topics.deadletter, outcome.key, value, headers))
        return records

    async def deliver(self, outcomes: Sequence[Outcome], source: Source) -> None:
        """Produce every outcome and wait for every ack; KafkaUnavailableError when Kafka fails."""
        events = [o.event for o in outcomes if isinstance(o, Accepted)]
        keys = await self.directory.keys(events) if events else []
        records = await self.records(outcomes, source, keys)
        await self.producer.send_all(records)
        ids = [o.message_id for o in outcomes if isinstance(o, Accepted) and o.message_id]
        assert self.dedupe is not None
        await self.dedupe.remember(dedupe_namespace(source), list(dict.fromkeys(ids)))
        for outcome in outcomes:
            if isinstance(outcome, Accepted):
                event = outcome.event
                EVENTS_RECEIVED.labels(channel=event["channel"], type=event["type"]).inc()
                if event["type"] == UNMAPPED:
                    EVENTS_UNMAPPED.labels(kind=source.kind).inc()
            elif isinstance(outcome, Rejected):
                DEAD_LETTERS.labels(stage=STAGE, reason=outcome.error.reason).inc()
            else:
                EVENTS_DROPPED.labels(reason=outcome.reason).inc()

    async def deadletter(
        self, raw: bytes, error: LeadstreamError, key: bytes | None = None
    ) -> None:
        """Dead-letter a whole request body (capped at max_request_bytes): for signed webhook
        bodies, whose sender is authenticated and whose every request is a new signature."""
        headers = deadletter_headers(error.reason, STAGE, str(error))
        await self.producer.send_deadletter(raw[: self.settings.max_request_bytes], key, headers)
        DEAD_LETTERS.labels(stage=STAGE, reason=error.reason).inc()

    async def refused_body(self, raw: bytes, error: LeadstreamError, source: Source) -> None:
        """Dead-letter a request body that could not be read as events at all (not gzip, not
        JSON, not an object or batch), from a known write key: its reason, error, source and
        length, and its first EXCERPT_BYTES only.

        Browser write keys are public, so whatever one can make the collector store must be
        bounded: before issue 28, 200 requests of 490 KB of broken JSON stored 98 MB of dead
        letters in 3.3 s. Such a body cannot be re-driven as it is anyway; the excerpt shows
        what the client sends, and the request was charged against the key's rate limit.
        """
        value, extra = self._bounded(raw, EXCERPT_BYTES)
        headers = deadletter_headers(
            error.reason, STAGE, str(error), extra=[("source", source.name), *extra]
        )
        await self.producer.send_deadletter(value, None, headers)
        DEAD_LETTERS.labels(stage=STAGE, reason=error.reason).inc()

    @staticmethod
    def _bounded(raw: bytes, limit: int) -> tuple[bytes, list[tuple[str, str]]]:
        """`raw` when it fits in `limit`, else its first EXCERPT_BYTES; the headers then say so
        (`body_bytes`: the original length, `excerpt`: true), so nothing is cut silently."""
        if len(raw) <= limit:
            return raw, []
        return raw[:EXCERPT_BYTES], [("body_bytes", str(len(raw))), ("excerpt", "true")]

    async def refusal(self, request: web.Request, raw: bytes, error: LeadstreamError) -> None:
        """A small dead letter for a request refused before it was trusted (bad signature).

        It holds the reason, a few request headers, the client address and the first
        EXCERPT_BYTES of the body, never the body itself, and at most
        `refused_deadletters_per_minute` of them per client address: without a credential
        nobody can fill the dead-letter topic. Refusals over the budget are counted.
        """
        COLLECTOR_REFUSALS.labels(error.reason).inc()
        address = request.remote or "unknown"
        if not self.refusal_budget.take(address):
            COLLECTOR_REFUSALS_UNRECORDED.inc()
            return
        extra = [("client_address", address), ("body_bytes", str(len(raw)))]
        extra += [
            (f"http_{name.lower()}", request.headers[name][:512])
            for name in _REFUSAL_HEADERS
            if name in request.headers
        ]
        headers = deadletter_headers(error.reason, STAGE, str(error), extra=extra)
        await self.producer.send_deadletter(raw[:EXCERPT_BYTES], None, headers)
        DEAD_LETTERS.labels(stage=STAGE, reason=error.reason).inc()


def dedupe_namespace(source: Source) -> str:
    """Transport dedupe is per source (every key of a source shares it), webhooks per provider."""
    return f"webhook:{source.name}" if source.kind == "webhook" else f"source:{source.name}"
