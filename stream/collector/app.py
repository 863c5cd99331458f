"""The collector's two aiohttp apps: the public ingest app (Segment-compatible API, pixel,
redirect, webhooks, health) and the internal one (lead API, /metrics) on its own listener."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis
from aiohttp import web
from aiokafka.errors import KafkaError
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from stream import health
from stream.collector import pixel, webhooks
from stream.collector.directory import AcceptStamps, Directory
from stream.collector.drain import InFlight
from stream.collector.limits import RateLimiter, decode_body, read_body
from stream.collector.mapping import UNMAPPED, EventMapping, load_mapping
from stream.collector.producer import EventProducer, Record
from stream.collector.segment import (
    Accepted,
    BatchTooLargeError,
    Outcome,
    Rejected,
    Source,
    body_write_key,
    parse_json,
    process,
    split_body,
)
from stream.collector.shared import ReplayGuard, SharedDedupe
from stream.collector.timeouts import GuardedSite, HeaderDeadline
from stream.deadletter import Headers, deadletter_headers
from stream.errors import (
    InvalidJsonError,
    KafkaUnavailableError,
    LeadstreamError,
    RedisUnavailableError,
    RequestTimeoutError,
    SchemaViolationError,
    SettingsError,
    SizeViolationError,
)
from stream.metrics import (
    COLLECTOR_REFUSALS,
    COLLECTOR_REFUSALS_UNRECORDED,
    DEAD_LETTERS,
    EVENTS_DROPPED,
    EVENTS_RECEIVED,
    EVENTS_UNMAPPED,
    HTTP_DURATION,
    HTTP_REQUEST_SIZE,
    HTTP_REQUESTS,
)
from stream.scoring.identity import secret_or_dev
from stream.settings import Settings
from stream.store.api import add_lead_routes
from stream.topics import Topics

log = logging.getLogger(__name__)

STAGE = "collector"
RETRY_AFTER_UNAVAILABLE = "5"
# Segment's full routes, their one-letter aliases (analytics.js), and /v1/import (batch).
SEGMENT_ROUTES = {
    "track": ("/v1/track", "/v1/t"),
    "identify": ("/v1/identify", "/v1/i"),
    "page": ("/v1/page", "/v1/p"),
    "screen": ("/v1/screen", "/v1/s"),
    "group": ("/v1/group", "/v1/g"),
    "alias": ("/v1/alias", "/v1/a"),
    "batch": ("/v1/batch", "/v1/b", "/v1/import"),
}
_CORS_HEADERS = "Content-Type, Authorization, Content-Encoding, AnonymousId"
# CORS is answered on the Segment ingest routes only: webhooks are server-to-server, the pixel
# and redirect are plain GETs that need no CORS, and nothing else is served on this port.
CORS_PATHS = frozenset(p for paths in SEGMENT_ROUTES.values() for p in paths)
# A refused request keeps this much of its body in the dead letter, never more.
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
        def split(text: str) -> tuple[str, ...]:
            return tuple(h.strip() for h in text.split(",") if h.strip())

        return cls(
            mapping_path=settings.mapping_path,
            pixel_cookie=settings.pixel_cookie,
            pixel_cookie_days=settings.pixel_cookie_days,
            redirect_hosts=tuple(h.lower() for h in split(settings.redirect_allow_hosts)),
            sendgrid_public_key=settings.sendgrid_public_key,
            mailgun_signing_key=settings.mailgun_signing_key,
            generic_webhook_secret=settings.generic_webhook_secret,
            webhook_tolerance_seconds=settings.webhook_tolerance_seconds,
            dedupe_seconds=settings.collector_dedupe_seconds,
            produce_timeout_seconds=settings.produce_timeout_seconds,
            cors_origins=tuple(o.rstrip("/") for o in split(settings.cors_origins)),
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
                headers = deadletter_headers(outcome.error.reason, STAGE, str(outcome.error))
                records.append(Record(self.topics.deadletter, outcome.key, outcome.raw, headers))
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
        """Dead-letter a whole request body (capped at max_request_bytes)."""
        headers = deadletter_headers(error.reason, STAGE, str(error))
        await self.producer.send_deadletter(raw[: self.settings.max_request_bytes], key, headers)
        DEAD_LETTERS.labels(stage=STAGE, reason=error.reason).inc()

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


COLLECTOR = web.AppKey("collector", Collector)


def create_app(
    settings: Settings,
    producer: Producer,
    *,
    mapping: EventMapping | None = None,
    options: CollectorOptions | None = None,
    clock: Callable[[], datetime] | None = None,
    redis: Any = None,
    deadline: HeaderDeadline | None = None,
    in_flight: InFlight | None = None,
) -> web.Application:
    """The public ingest app; producer and (given) Redis client stay with the caller.

    Without `redis` the app opens its own client from LEADSTREAM_REDIS_URL when it starts.
    `deadline` (from `run`) disarms the header timeout when a request's headers are in.
    """
    options = options or CollectorOptions.from_settings(settings)
    mapping = mapping or load_mapping(options.mapping_path or None)
    collector = Collector(settings, producer, mapping, options, clock or _utcnow)
    middlewares = [_observe, _cors]
    if in_flight is not None:
        middlewares.insert(0, in_flight.middleware)
    if deadline is not None:
        middlewares.insert(0, deadline.middleware())
    app = web.Application(middlewares=middlewares, client_max_size=settings.max_request_bytes)
    app[COLLECTOR] = collector
    if redis is not None:
        collector.attach_redis(redis)
    else:

        async def open_redis(app: web.Application) -> None:
            collector.attach_redis(aioredis.from_url(settings.redis_url))

        async def close_redis(app: web.Application) -> None:
            if collector.redis is not None:
                await collector.redis.aclose()

        app.on_startup.append(open_redis)
        app.on_cleanup.append(close_redis)
    for call, paths in SEGMENT_ROUTES.items():
        handler = _segment_handler(collector, call)
        for path in paths:
            app.router.add_post(path, handler)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.add_routes(pixel.routes(collector))
    app.add_routes(webhooks.routes(collector))
    return app


def create_internal_app(settings: Settings) -> web.Application:
    """The internal listener's app: the lead API (bearer token with a scope) and /metrics."""
    app = web.Application()
    add_lead_routes(app, settings)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    return app


SHUTDOWN_SECONDS = 10.0  # requests in flight at SIGTERM get this long to finish


async def run(settings: Settings) -> None:
    """Serve both listeners until SIGTERM or SIGINT, then drain requests and flush Kafka."""
    from stream.credentials import check_collector
    from stream.topics import ensure_topics

    check_collector(settings)  # before anything listens: no placeholder credentials
    if (settings.collector_host, settings.collector_port) == (
        settings.collector_internal_host,
        settings.collector_internal_port,
    ):
        raise SettingsError(
            "LEADSTREAM_COLLECTOR_INTERNAL_PORT equals LEADSTREAM_COLLECTOR_PORT: the lead API "
            "and /metrics need a listener of their own"
        )
    options = CollectorOptions.from_settings(settings)
    producer = EventProducer.from_settings(settings, timeout=options.produce_timeout_seconds)
    try:
        await ensure_topics(settings)
    except (KafkaError, OSError) as exc:  # serve anyway: requests answer 503 until Kafka is back
        log.warning("could not check topics (Kafka at %s): %s", settings.kafka_bootstrap, exc)
    deadline = HeaderDeadline(settings.header_timeout_seconds)
    in_flight = InFlight()
    app = create_app(settings, producer, options=options, deadline=deadline, in_flight=in_flight)
    # auto_decompress off: the collector inflates gzip itself, with a cap (gzip bombs).
    # keepalive_timeout: an idle connection is closed by the header deadline anyway.
    runner = web.AppRunner(
        app,
        auto_decompress=False,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=SHUTDOWN_SECONDS,
        keepalive_timeout=settings.header_timeout_seconds,
    )
    internal = web.AppRunner(create_internal_app(settings), handle_signals=False, access_log=None)
    await runner.setup()
    await internal.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = GuardedSite(runner, settings.collector_host, settings.collector_port, deadline)
        await site.start()
        host, port = settings.collector_internal_host, settings.collector_internal_port
        await web.TCPSite(internal, host, port).start()
        log.info(
            "collector listening on %s:%s (ingest), %s:%s (lead API, /metrics)",
            settings.collector_host,
            settings.collector_port,
            host,
            port,
        )
        await stop.wait()
        log.info("collector stopping: no new connections; answering the requests in flight")
        await site.stop()
        left = await in_flight.drained(SHUTDOWN_SECONDS)
        if left:
            log.warning(
                "%d requests still in flight after %ss; closing them", left, SHUTDOWN_SECONDS
            )
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
        await internal.cleanup()
        await producer.stop()
        await app[COLLECTOR].directory.close()


def error_response(
    status: int, reason: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON error in the shape Segment's SDKs read (`code`, `message`)."""
    body = {"success": False, "code": reason, "message": message}
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


def unavailable(exc: KafkaUnavailableError | RedisUnavailableError) -> web.Response:
    what = "Kafka" if isinstance(exc, KafkaUnavailableError) else "Redis"
    log.warning("%s unavailable: %s", what, exc)
    return error_response(
        503,
        exc.reason,
        f"{what} is unavailable; retry later",
        {"Retry-After": RETRY_AFTER_UNAVAILABLE},
    )


def timed_out(exc: RequestTimeoutError) -> web.Response:
    """408 and close: the client was too slow to send its body."""
    COLLECTOR_REFUSALS.labels(exc.reason).inc()
    response = error_response(408, exc.reason, str(exc), {"Connection": "close"})
    response.force_close()
    return response


def write_key_of(request: web.Request) -> str | None:
    """The write key from HTTP Basic auth (user name) or the `writeKey` query parameter."""
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            user = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user.partition(":")[0] or None
    return request.query.get("writeKey") or None


SUCCESS = orjson.dumps({"success": True})


def _segment_handler(
    collector: Collector, call: str
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    settings = collector.settings

    async def handle(request: web.Request) -> web.StreamResponse:
        received_at = collector.now()
        source = collector.source(write_key_of(request))
        if source is None and ("Authorization" in request.headers or "writeKey" in request.query):
            return error_response(401, "unknown_source", "unknown write key")
        if source is not None and (wait := collector.limiter.retry_after(source.namespace)):
            return error_response(429, "rate_limited", "rate limit", {"Retry-After": str(wait)})
        body_bytes = b""
        try:
            body_bytes = await read_body(
                request, settings.max_request_bytes, collector.options.body_timeout_seconds
            )
            HTTP_REQUEST_SIZE.labels(route=_route(request)).observe(len(body_bytes))
            raw = decode_body(
                body_bytes, request.headers.get("Content-Encoding", ""), settings.max_request_bytes
            )
            if call != "batch" and len(raw) > settings.max_event_bytes:
                raise SizeViolationError(
                    f"event of {len(raw)} bytes exceeds {settings.max_event_bytes} bytes"
                )
        except SizeViolationError as exc:
            return error_response(413, exc.reason, str(exc))
        except RequestTimeoutError as exc:
            return timed_out(exc)
        except InvalidJsonError as exc:  # not gzip, or an encoding we do not speak
            if source is None:
                return _missing_key()
            return await _reject_body(collector, body_bytes, exc)
        try:
            body = parse_json(raw)
        except InvalidJsonError as exc:
            if source is None:
                return _missing_key()
            return await _reject_body(collector, raw, exc)
        if source is None:
            source = collector.source(body_write_key(body))
            if source is None:
                return _missing_key()
            if wait := collector.limiter.retry_after(source.namespace):
                return error_response(429, "rate_limited", "rate limit", {"Retry-After": str(wait)})
        try:
            batch = split_body(call, body, settings.max_batch_events)
        except BatchTooLargeError as exc:
            return error_response(400, exc.reason, str(exc))
        except SchemaViolationError as exc:
            return await _reject_body(collector, raw, exc)
        collector.limiter.charge(source.namespace, len(batch.messages))
        outcomes = process(
            batch,
            call,
            source,
            collector.mapping,
            received_at,
            settings.max_event_bytes,
            raw_single=None if call == "batch" else raw,
        )
        try:
            await collector.deliver(outcomes, source)
        except KafkaUnavailableError as exc:
            return unavailable(exc)
        if call != "batch" and isinstance(outcomes[0], Rejected):
            error = outcomes[0].error
            return error_response(400, error.reason, str(error))
        return web.Response(body=SUCCESS, content_type="application/json")

    return handle


def _missing_key() -> web.Response:
    return error_response(
        401, "unknown_source", "missing write key: use Basic auth, writeKey in the body or query"
    )


async def _reject_body(
    collector: Collector, raw: bytes, error: LeadstreamError
) -> web.StreamResponse:
    """400 for a body that cannot be read at all, after dead-lettering it."""
    try:
        await collector.deadletter(raw, error)
    except KafkaUnavailableError as exc:
        return unavailable(exc)
    return error_response(400, error.reason, str(error))


async def _healthz(request: web.Request) -> web.Response:
    return health.alive()


async def _readyz(request: web.Request) -> web.Response:
    return health.readiness(kafka=await request.app[COLLECTOR].producer.ping())


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _route(request: web.Request) -> str:
    """The route pattern (never the raw path, which could carry anything) as a metric label."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = _route(request)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except Exception:
        # A bug, not bad data: bad data always ends in a LeadstreamError handled above.
        log.exception("unhandled error on %s", route)
        return error_response(500, "processing_error", "internal error")
    finally:
        HTTP_REQUESTS.labels(route=route, status=str(status)).inc()
        HTTP_DURATION.labels(route=route).observe(time.perf_counter() - started)


@web.middleware
async def _cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Browser SDKs post cross-origin: answer preflights and allow configured origins only.

    Only the Segment ingest routes, only LEADSTREAM_CORS_ORIGINS (none by default), and never
    with credentials: `*` is sent as `*`, so no page can read a response with a user's cookies.
    """
    if request.path not in CORS_PATHS:
        return await handler(request)
    origins = request.app[COLLECTOR].options.cors_origins
    origin = request.headers.get("Origin", "").rstrip("/")
    if request.method == "OPTIONS":
        response: web.StreamResponse = web.Response(status=204)
    else:
        response = await handler(request)
    allowed = "*" if "*" in origins else origin if origin and origin in origins else None
    if allowed is not None:
        response.headers["Access-Control-Allow-Origin"] = allowed
        if allowed != "*":
            response.headers["Vary"] = "Origin"
        response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = _CORS_HEADERS
        response.headers["Access-Control-Max-Age"] = "86400"
    return response


def _utcnow() -> datetime:
    return datetime.now(UTC)
