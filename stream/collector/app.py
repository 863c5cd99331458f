"""The collector's aiohttp app: Segment-compatible API, pixel, redirect, webhooks, health."""

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
from aiohttp import web
from aiokafka.errors import KafkaError
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from stream.collector import pixel, webhooks
from stream.collector.directory import AcceptStamps, Directory
from stream.collector.limits import RateLimiter, RecentIds, decode_body, read_body
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
from stream.deadletter import Headers, deadletter_headers
from stream.errors import (
    InvalidJsonError,
    KafkaUnavailableError,
    LeadstreamError,
    SchemaViolationError,
    SizeViolationError,
)
from stream.metrics import (
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


class Producer(Protocol):
    """What the app needs from a producer; EventProducer and the tests' fake provide it."""

    async def send_all(self, records: Sequence[Record]) -> None: ...

    async def send_deadletter(self, raw: bytes, key: bytes | None, headers: Headers) -> None: ...

    async def ping(self) -> bool: ...


@dataclass(frozen=True)
class CollectorOptions:
    """Collector settings that are not (yet) fields of Settings; read from it when present."""

    mapping_path: str = ""
    pixel_cookie: str = ""
    pixel_cookie_days: int = 365
    redirect_hosts: tuple[str, ...] = ()
    sendgrid_public_key: str = ""
    mailgun_signing_key: str = ""
    generic_webhook_secret: str = ""
    webhook_tolerance_seconds: float = 0.0
    dedupe_ids: int = 100_000
    produce_timeout_seconds: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> CollectorOptions:
        def get(name: str, default: Any) -> Any:
            return getattr(settings, name, default)

        hosts = get("redirect_allow_hosts", "")
        return cls(
            mapping_path=get("mapping_path", ""),
            pixel_cookie=get("pixel_cookie", ""),
            pixel_cookie_days=int(get("pixel_cookie_days", 365)),
            redirect_hosts=tuple(h.strip().lower() for h in hosts.split(",") if h.strip()),
            sendgrid_public_key=get("sendgrid_public_key", ""),
            mailgun_signing_key=get("mailgun_signing_key", ""),
            generic_webhook_secret=get("generic_webhook_secret", ""),
            webhook_tolerance_seconds=float(get("webhook_tolerance_seconds", 0.0)),
            dedupe_ids=int(get("collector_dedupe_ids", 100_000)),
            produce_timeout_seconds=float(get("produce_timeout_seconds", 10.0)),
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
        self.recent = RecentIds(options.dedupe_ids)
        self.directory = Directory(
            settings.redis_url, settings.redis_prefix, secret_or_dev(settings.identity_secret)
        )
        self.stamps = AcceptStamps()
        self.now = clock

    def source(self, write_key: str | None) -> Source | None:
        """The source of a write key, or None when the key is unknown."""
        if write_key is None or write_key not in self.write_keys:
            return None
        name, kind = self.write_keys[write_key]
        return Source(name, kind, write_key)

    def records(
        self, outcomes: Sequence[Outcome], source: Source, keys: Sequence[bytes] | None = None
    ) -> list[Record]:
        """Kafka records of the outcomes: retried message ids are left out (transport dedupe).

        `keys`: one per accepted outcome, from the identity directory (default: each event's
        own key). Each record carries its acceptance stamp (`accepted_at`), which orders one
        person's records across topics in the worker.
        """
        records: list[Record] = []
        in_request: set[str] = set()
        accepted = iter(keys or ())
        for outcome in outcomes:
            if isinstance(outcome, Accepted):
                key = next(accepted, outcome.key)
                message_id = outcome.message_id
                if message_id is not None:
                    if message_id in in_request or self.recent.seen(source.namespace, message_id):
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
        records = self.records(outcomes, source, keys)
        await self.producer.send_all(records)
        ids = [o.message_id for o in outcomes if isinstance(o, Accepted) and o.message_id]
        self.recent.add(source.namespace, ids)
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


COLLECTOR = web.AppKey("collector", Collector)


def create_app(
    settings: Settings,
    producer: Producer,
    *,
    mapping: EventMapping | None = None,
    options: CollectorOptions | None = None,
    clock: Callable[[], datetime] | None = None,
) -> web.Application:
    """The collector app; the producer's lifecycle stays with the caller (see `run`)."""
    options = options or CollectorOptions.from_settings(settings)
    mapping = mapping or load_mapping(options.mapping_path or None)
    collector = Collector(settings, producer, mapping, options, clock or _utcnow)
    app = web.Application(middlewares=[_observe, _cors], client_max_size=settings.max_request_bytes)
    app[COLLECTOR] = collector
    for call, paths in SEGMENT_ROUTES.items():
        handler = _segment_handler(collector, call)
        for path in paths:
            app.router.add_post(path, handler)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app.add_routes(pixel.routes(collector))
    app.add_routes(webhooks.routes(collector))
    return app


async def run(settings: Settings) -> None:
    """Serve the collector until SIGTERM or SIGINT, then drain requests and flush Kafka."""
    from stream.topics import ensure_topics

    options = CollectorOptions.from_settings(settings)
    producer = EventProducer.from_settings(settings, timeout=options.produce_timeout_seconds)
    try:
        await ensure_topics(settings)
    except (KafkaError, OSError) as exc:  # serve anyway: requests answer 503 until Kafka is back
        log.warning("could not check topics (Kafka at %s): %s", settings.kafka_bootstrap, exc)
    app = create_app(settings, producer, options=options)
    add_lead_routes(app, settings)  # the lead API shares the collector's port
    # auto_decompress off: the collector inflates gzip itself, with a cap (gzip bombs).
    runner = web.AppRunner(
        app, auto_decompress=False, handle_signals=False, access_log=None, shutdown_timeout=10.0
    )
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, settings.collector_host, settings.collector_port)
        await site.start()
        log.info("collector listening on %s:%s", settings.collector_host, settings.collector_port)
        await stop.wait()
        log.info("collector stopping")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
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


def unavailable(exc: KafkaUnavailableError) -> web.Response:
    log.warning("Kafka unavailable: %s", exc)
    return error_response(
        503,
        exc.reason,
        "Kafka is unavailable; retry later",
        {"Retry-After": RETRY_AFTER_UNAVAILABLE},
    )


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
            body_bytes = await read_body(request, settings.max_request_bytes)
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
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    if await request.app[COLLECTOR].producer.ping():
        return web.json_response({"status": "ready", "kafka": True})
    return web.json_response({"status": "not ready", "kafka": False}, status=503)


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
    """Browser SDKs post cross-origin; answer preflights and allow the origin on /v1 routes."""
    if not request.path.startswith("/v1/"):
        return await handler(request)
    origin = request.headers.get("Origin")
    if request.method == "OPTIONS":
        response: web.StreamResponse = web.Response(status=204)
    else:
        response = await handler(request)
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = _CORS_HEADERS
        response.headers["Access-Control-Max-Age"] = "86400"
    return response


def _utcnow() -> datetime:
    return datetime.now(UTC)
