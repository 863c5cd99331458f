"""The collector's access log: one line per answered request on the `leadstream.access` logger,
for both listeners, on unless LEADSTREAM_COLLECTOR_ACCESS_LOG=false.

It goes through the process's formatter (`stream/logs.py`): in text a readable line, in JSON
the same line as `message` plus every field as a key of its own. What it never holds is the
point of this module: pixel and redirect URLs carry write keys and emails in their query,
Segment calls a write key in `Authorization`, webhooks signatures, the lead API bearer tokens
and lead ids in its path. So a line has the route *pattern* (`/v1/leads/{lead_id}`, the same
label as the metrics), never the path or the query, and no header but the user agent and a
well-formed `X-Request-Id`.

aiohttp calls `log` after the response is sent (so `bytes` and `duration_ms` are what the
client got), also for requests aiohttp answers itself before any route runs (a malformed
request line: route `malformed`). aiohttp's own `aiohttp.access` logger is never used: `run`
hands aiohttp this class and logger, or no access logger at all. Nor does `aiohttp.server`
quote a request line: see `HideRequestLines`.
"""

from __future__ import annotations

import logging
import re
from typing import Any, ClassVar

import orjson
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from stream.logs import FIELDS
from stream.settings import Settings

ACCESS_LOGGER = "leadstream.access"
# Polled by Kubernetes every few seconds and by Prometheus every scrape: logged at debug when
# they succeed, so they do not drown the requests; a failing probe is logged at info.
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
UNMATCHED = "unmatched"
MALFORMED = "malformed"
USER_AGENT_CHARS = 256
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")


def route_of(request: BaseRequest) -> str:
    """The matched route's pattern (never the raw path, which could carry anything): the
    metrics' `route` label and the access log's `route`."""
    if not isinstance(request, web.Request):
        return MALFORMED
    try:
        resource = request.match_info.route.resource
    except (AssertionError, AttributeError):
        # No match info: aiohttp answered the request before routing (it could not parse it).
        return MALFORMED
    return resource.canonical if resource is not None else UNMATCHED


def access_fields(
    listener: str, request: BaseRequest, response: StreamResponse, seconds: float
) -> dict[str, Any]:
    """The fields of one access line; nothing in them comes from a query, a body or a header
    other than User-Agent and X-Request-Id."""
    user_agent = request.headers.get("User-Agent")
    request_id = request.headers.get("X-Request-Id", "")
    return {
        "listener": listener,
        "method": request.method[:16],
        "route": route_of(request),
        "status": response.status,
        "bytes": response.body_length,  # sent, headers included (aiohttp counts them so)
        "duration_ms": round(seconds * 1000, 3),
        "client": request.remote,
        "user_agent": user_agent[:USER_AGENT_CHARS] if user_agent else None,
        "request_id": request_id if _REQUEST_ID.fullmatch(request_id) else None,
    }


def access_line(fields: dict[str, Any]) -> str:
    """The text form: `ingest GET /v1/pixel 200 282B 1.2ms 10.0.0.7 "Mozilla/5.0 …"`; the user
    agent is JSON-quoted, so a control character in it cannot fake a line."""
    line = (
        f"{fields['listener']} {fields['method']} {fields['route']} {fields['status']} "
        f"{fields['bytes']}B {fields['duration_ms']:g}ms {fields['client'] or '-'} "
        f"{orjson.dumps(fields['user_agent']).decode() if fields['user_agent'] else '-'}"
    )
    if fields["request_id"]:
        line += f" request_id={fields['request_id']}"
    return line


class AccessLog(AbstractAccessLogger):
    """aiohttp's access-logger hook, writing the public (ingest) listener's lines."""

    listener: ClassVar[str] = "ingest"

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        fields = access_fields(self.listener, request, response, time)
        quiet = fields["route"] in QUIET_ROUTES and response.status < 400
        level = logging.DEBUG if quiet else logging.INFO
        self.logger.log(level, "%s", access_line(fields), extra={FIELDS: fields})

    @property
    def enabled(self) -> bool:
        """aiohttp skips `log` entirely when the logger would drop every line."""
        return self.logger.isEnabledFor(logging.INFO)


class InternalAccessLog(AccessLog):
    """The internal listener's lines (lead API, /metrics, /healthz)."""

    listener: ClassVar[str] = "internal"


def runner_options(settings: Settings, internal: bool = False) -> dict[str, Any]:
    """`web.AppRunner` keyword arguments for a listener: our access log, or none at all
    (aiohttp's default would log the raw request line, query string included)."""
    if not settings.collector_access_log:
        return {"access_log": None}
    return {
        "access_log_class": InternalAccessLog if internal else AccessLog,
        "access_log": logging.getLogger(ACCESS_LOGGER),
    }


class HideRequestLines(logging.Filter):
    """aiohttp logs a request it cannot parse as an error with the parser's exception, and that
    exception's text quotes the offending request line or header: a pixel URL's write key and
    email, verbatim. This filter keeps the line's message and the exception's type and status,
    and drops the quoted text and the traceback (the access log has the request's 400)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            message = record.getMessage()
            record.msg = "%s: %s %s (the request's text is not logged)"
            record.args = (message, type(exc).__name__, exc.code)
            record.exc_info = None
            record.exc_text = None
        return True


def hide_request_lines() -> None:
    """Install HideRequestLines on aiohttp's server logger, once per process."""
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, HideRequestLines) for f in server.filters):
        server.addFilter(HideRequestLines())
