"""Tracking pixel (always the GIF) and the allow-listed click redirect."""

from __future__ import annotations

import base64
import logging
import re
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from yarl import URL

from stream.collector.responses import error_response
from stream.collector.segment import Batch, process
from stream.collector.service import Collector
from stream.errors import LeadstreamError
from stream.metrics import COLLECTOR_REFUSALS

log = logging.getLogger(__name__)

# 1x1 transparent GIF89a (white palette entry marked transparent): 43 bytes.
GIF = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")
NO_CACHE = {
    "Cache-Control": "no-cache, no-store, must-revalidate, private, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
}
# Query parameters with a meaning; every other parameter becomes an event property.
_RESERVED = {
    "writeKey",
    "type",
    "event",
    "url",
    "anonymousId",
    "userId",
    "email",
    "messageId",
    "timestamp",
    "name",
    "u",
}
_MAX_PROPERTIES = 50
_COOKIE_VALUE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_UNSAFE_URL = re.compile(r"[\\\s\x00-\x1f\x7f]")


SERVER_KEY_ON_GET = (
    "server write keys are refused on GET routes (a key in a URL ends up in logs and "
    "referrers): use a browser key here, and send server events with POST /v1/track"
)


def _server_key(collector: Collector, request: web.Request) -> bool:
    """True when the URL carries a server write key (refused: it would leak, and it would let
    an image tag send CRM-only event types)."""
    source = collector.source(request.query.get("writeKey"))
    if source is not None and source.kind == "server":
        COLLECTOR_REFUSALS.labels("server_key_on_get").inc()
        log.warning("GET %s with a server write key refused", request.path)
        return True
    return False


def routes(collector: Collector) -> list[web.RouteDef]:
    async def pixel(request: web.Request) -> web.StreamResponse:
        if _server_key(collector, request):
            # Still the GIF (an image tag shows nothing else), with the reason in a header.
            headers = {**NO_CACHE, "X-Leadstream-Error": SERVER_KEY_ON_GET}
            return web.Response(status=403, body=GIF, content_type="image/gif", headers=headers)
        response = web.Response(body=GIF, content_type="image/gif", headers=NO_CACHE)
        try:
            anonymous_id = _cookie_anonymous_id(collector, request, response)
            await _record(collector, request, "page", anonymous_id)
        except Exception:  # the pixel answers the GIF whatever happens; the log says why
            log.warning("pixel event not recorded", exc_info=True)
        return response

    async def redirect(request: web.Request) -> web.StreamResponse:
        target = request.query.get("u", "")
        if not allowed_redirect(target, collector.options.redirect_hosts):
            return web.Response(status=400, text="redirect target is not allowed", headers=NO_CACHE)
        if _server_key(collector, request):
            return error_response(403, "server_key_on_get", SERVER_KEY_ON_GET, NO_CACHE)
        if "writeKey" in request.query:
            try:
                cookie = request.cookies.get(collector.options.pixel_cookie or "", "")
                anonymous_id = cookie if _COOKIE_VALUE.match(cookie) else None
                await _record(collector, request, "track", anonymous_id, url=target)
            except Exception:  # never keep the visitor from the page they clicked
                log.warning("click event not recorded", exc_info=True)
        raise web.HTTPFound(target, headers=NO_CACHE)

    return [
        web.get("/v1/pixel", pixel),
        web.get("/i", pixel),
        web.get("/v1/r", redirect),
    ]


def allowed_redirect(target: str, hosts: tuple[str, ...]) -> bool:
    """True for an http(s) URL whose host is an allow-listed domain or one of its subdomains."""
    if not target or len(target) > 4096 or _UNSAFE_URL.search(target):
        return False
    try:
        parts = urlsplit(target)
        host = (parts.hostname or "").lower().rstrip(".")
        _ = parts.port  # out-of-range ports raise here
        URL(target)  # and whatever yarl (the Location header) would refuse
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or "@" in parts.netloc or not host:
        return False
    return any(host == allowed or host.endswith("." + allowed) for allowed in hosts)


def message_from_query(
    query: Mapping[str, str], headers: Mapping[str, str], call: str, anonymous_id: str | None
) -> dict[str, Any]:
    """A Segment message from pixel query parameters (and the Referer / User-Agent headers)."""
    url = query.get("url") or headers.get("Referer")
    properties = {
        k[:64]: v[:1024]
        for k, v in list(query.items())[: _MAX_PROPERTIES + len(_RESERVED)]
        if k not in _RESERVED
    }
    properties = dict(list(properties.items())[:_MAX_PROPERTIES])
    context: dict[str, Any] = {"library": {"name": "leadstream-pixel"}}
    if headers.get("User-Agent"):
        context["userAgent"] = headers["User-Agent"]
    if url:
        context["page"] = {"url": url}
        properties.setdefault("url", url)
    if query.get("email"):
        context["traits"] = {"email": query["email"]}
    message: dict[str, Any] = {
        "type": call,
        "anonymousId": query.get("anonymousId") or anonymous_id,
        "userId": query.get("userId"),
        "messageId": query.get("messageId"),
        "timestamp": query.get("timestamp"),
        "properties": properties,
        "context": context,
    }
    if call == "track":
        message["event"] = query.get("event") or "Link Clicked"
    elif query.get("name"):
        message["name"] = query["name"]
    return message


async def _record(
    collector: Collector,
    request: web.Request,
    default_call: str,
    anonymous_id: str | None,
    url: str | None = None,
) -> None:
    source = collector.source(request.query.get("writeKey"))
    if source is None:
        log.info("pixel request without a known write key: nothing recorded")
        return
    if collector.limiter.retry_after(source.namespace):
        log.info("pixel request over the rate limit of its write key: nothing recorded")
        return
    query = dict(request.query)
    if url is not None:
        query.setdefault("url", url)
    call = query.get("type", default_call)
    call = call if call in ("page", "track") else default_call
    if "event" in query and default_call == "page" and "type" not in query:
        call = "track"
    message = message_from_query(query, request.headers, call, anonymous_id)
    collector.limiter.charge(source.namespace, 1)
    outcomes = process(
        Batch([message]),
        "batch",
        source,
        collector.mapping,
        collector.now(),
        collector.settings.max_event_bytes,
    )
    try:
        await collector.deliver(outcomes, source)
    except LeadstreamError as exc:
        log.warning("pixel event lost: %s", exc)


def _cookie_anonymous_id(
    collector: Collector, request: web.Request, response: web.Response
) -> str | None:
    """The first-party anonymous-id cookie (set when missing), when the cookie is enabled."""
    name = collector.options.pixel_cookie
    if not name:
        return None
    value = request.cookies.get(name, "")
    if _COOKIE_VALUE.match(value):
        return value
    if request.query.get("anonymousId"):
        return None
    value = str(uuid.uuid4())
    response.set_cookie(
        name,
        value,
        max_age=collector.options.pixel_cookie_days * 86400,
        path="/",
        httponly=True,
        secure=request.secure,
        samesite="Lax",
    )
    return value
