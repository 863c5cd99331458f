"""The collector's two aiohttp apps: the public ingest app (Segment-compatible API, pixel,
redirect, webhooks, health) and the internal one (lead API, /metrics) on its own listener."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiohttp import web
from aiokafka.errors import KafkaError
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from stream import health
from stream.collector import pixel, webhooks
from stream.collector.access import hide_request_lines, route_of, runner_options
from stream.collector.drain import InFlight
from stream.collector.limits import decode_body, read_body
from stream.collector.mapping import EventMapping, load_mapping
from stream.collector.producer import EventProducer
from stream.collector.responses import error_response, timed_out, unavailable
from stream.collector.segment import (
    BatchTooLargeError,
    Rejected,
    Source,
    body_write_key,
    parse_json,
    process,
    split_body,
)
from stream.collector.service import Collector, CollectorOptions, Producer
from stream.collector.timeouts import GuardedSite, HeaderDeadline
from stream.credentials import check_collector
from stream.errors import (
    InvalidJsonError,
    KafkaUnavailableError,
    LeadstreamError,
    RequestTimeoutError,
    SchemaViolationError,
    SettingsError,
    SizeViolationError,
)
from stream.metrics import HTTP_DURATION, HTTP_REQUEST_SIZE, HTTP_REQUESTS
from stream.settings import Settings
from stream.store.api import add_lead_routes
from stream.topics import ensure_topics

log = logging.getLogger(__name__)

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


def create_internal_app(
    settings: Settings, *, deadline: HeaderDeadline | None = None
) -> web.Application:
    """The internal listener's app: the lead API (bearer token with a scope) and /metrics.

    `deadline` (from `run`) disarms the header timeout when a request's headers are in, as on
    the public listener: "internal" is a network boundary, not a promise that every client on
    it is well-behaved (issue 28: 100 connections trickling headers were held 84.5 s).
    """
    app = web.Application(middlewares=[deadline.middleware()] if deadline is not None else [])
    add_lead_routes(app, settings)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    return app


SHUTDOWN_SECONDS = 10.0  # requests in flight at SIGTERM get this long to finish


async def run(settings: Settings) -> None:
    """Serve both listeners until SIGTERM or SIGINT, then drain requests and flush Kafka."""
    check_collector(settings)  # before anything listens: no placeholder credentials
    hide_request_lines()  # aiohttp would log a malformed request line with its query string
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
    # One header deadline for both listeners: the same slow-client limits on each.
    deadline = HeaderDeadline(settings.header_timeout_seconds)
    in_flight = InFlight()
    app = create_app(settings, producer, options=options, deadline=deadline, in_flight=in_flight)
    # auto_decompress off: the collector inflates gzip itself, with a cap (gzip bombs).
    # keepalive_timeout: an idle connection is closed by the header deadline anyway.
    # The access log (stream/collector/access.py) is ours or none: never aiohttp's own, which
    # would print each request line with its query string (write keys, emails).
    runner = web.AppRunner(
        app,
        auto_decompress=False,
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_SECONDS,
        keepalive_timeout=settings.header_timeout_seconds,
        **runner_options(settings),
    )
    internal = web.AppRunner(
        create_internal_app(settings, deadline=deadline),
        handle_signals=False,
        keepalive_timeout=settings.header_timeout_seconds,
        **runner_options(settings, internal=True),
    )
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
        await GuardedSite(internal, host, port, deadline).start()
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
        if source is not None:
            if wait := collector.limiter.retry_after(source.namespace):
                return error_response(429, "rate_limited", "rate limit", {"Retry-After": str(wait)})
            # Every request costs at least one event, valid or not: an invalid body must not be
            # free (issue 28: 100 of 100 broken bodies passed a 5/s limit).
            collector.limiter.charge(source.namespace, 1)
        body_bytes = b""
        try:
            body_bytes = await read_body(
                request, settings.max_request_bytes, collector.options.body_timeout_seconds
            )
            HTTP_REQUEST_SIZE.labels(route=route_of(request)).observe(len(body_bytes))
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
            return await _reject_body(collector, body_bytes, exc, source)
        try:
            body = parse_json(raw)
        except InvalidJsonError as exc:
            if source is None:
                return _missing_key()
            return await _reject_body(collector, raw, exc, source)
        if source is None:
            source = collector.source(body_write_key(body))
            if source is None:
                return _missing_key()
            if wait := collector.limiter.retry_after(source.namespace):
                return error_response(429, "rate_limited", "rate limit", {"Retry-After": str(wait)})
            collector.limiter.charge(source.namespace, 1)
        try:
            batch = split_body(call, body, settings.max_batch_events)
        except BatchTooLargeError as exc:
            return error_response(400, exc.reason, str(exc))
        except SchemaViolationError as exc:
            return await _reject_body(collector, raw, exc, source)
        # One event was charged for the request; the others of a batch now (rejected ones too:
        # each may become a dead letter).
        collector.limiter.charge(source.namespace, max(0, len(batch.messages) - 1))
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
    collector: Collector, raw: bytes, error: LeadstreamError, source: Source
) -> web.StreamResponse:
    """400 for a body that cannot be read at all, after dead-lettering an excerpt of it."""
    try:
        await collector.refused_body(raw, error, source)
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


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = route_of(request)
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
