"""The collector's error answers, the same from every route: Segment's JSON error shape, 503
with Retry-After when Kafka or Redis is down, 408 and close for a body that came too slowly."""

from __future__ import annotations

import logging

import orjson
from aiohttp import web

from stream.errors import KafkaUnavailableError, RedisUnavailableError, RequestTimeoutError
from stream.metrics import COLLECTOR_REFUSALS

log = logging.getLogger(__name__)

RETRY_AFTER_UNAVAILABLE = "5"


def error_response(
    status: int, reason: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON error in the shape Segment's SDKs read (`code`, `message`)."""
    body = {"success": False, "code": reason, "message": message}
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


def unavailable(exc: KafkaUnavailableError | RedisUnavailableError) -> web.Response:
    """503 with Retry-After: SDKs and webhook providers retry, nothing is lost."""
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
