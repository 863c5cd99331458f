"""Email and social webhooks: POST /v1/webhooks/{provider}, signatures verified, events mapped."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from stream.collector.eventtime import check_not_future, parse_time
from stream.collector.limits import decode_body, read_body
from stream.collector.mapping import UNMAPPED, EventMapping
from stream.collector.segment import (
    Accepted,
    Outcome,
    Rejected,
    Source,
    identity_key,
    make_event,
    normalise_email,
)
from stream.errors import (
    InvalidJsonError,
    KafkaUnavailableError,
    LeadstreamError,
    SchemaViolationError,
    SignatureInvalidError,
    SizeViolationError,
)

if TYPE_CHECKING:
    from stream.collector.app import Collector


@dataclass(frozen=True)
class WebhookContext:
    """What a provider parser needs besides the request: source, mapping, clock, limits."""

    source: Source
    mapping: EventMapping
    received_at: datetime
    max_event_bytes: int
    secret: str
    tolerance_seconds: float


Parser = Callable[[bytes, Mapping[str, str], WebhookContext], list[Outcome]]


def _providers() -> dict[str, tuple[Parser, str, str]]:
    """provider -> (parser, CollectorOptions field of its secret, setting name for messages)."""
    from stream.collector.webhooks import generic, mailgun, sendgrid

    return {
        "sendgrid": (sendgrid.parse, "sendgrid_public_key", "LEADSTREAM_SENDGRID_PUBLIC_KEY"),
        "mailgun": (mailgun.parse, "mailgun_signing_key", "LEADSTREAM_MAILGUN_SIGNING_KEY"),
        "generic": (generic.parse, "generic_webhook_secret", "LEADSTREAM_GENERIC_WEBHOOK_SECRET"),
    }


def routes(collector: Collector) -> list[web.RouteDef]:
    from stream.collector.app import error_response, unavailable

    providers = _providers()
    settings = collector.settings

    async def handle(request: web.Request) -> web.StreamResponse:
        name = request.match_info["provider"]
        if name not in providers:
            return error_response(404, "unknown_source", f"no webhook provider {name!r}")
        parser, option, setting = providers[name]
        secret = str(getattr(collector.options, option))
        if not secret:
            return error_response(404, "unknown_source", f"{name} webhook is off: set {setting}")
        context = WebhookContext(
            Source(name, "webhook", f"webhook:{name}"),
            collector.mapping,
            collector.now(),
            settings.max_event_bytes,
            secret,
            collector.options.webhook_tolerance_seconds,
        )
        error: LeadstreamError | None = None
        outcomes: list[Outcome] = []
        body = b""
        try:
            body = await read_body(request, settings.max_request_bytes)
            raw = decode_body(
                body, request.headers.get("Content-Encoding", ""), settings.max_request_bytes
            )
        except SizeViolationError as exc:
            return error_response(413, exc.reason, str(exc))
        except InvalidJsonError as exc:
            raw, error = body, exc
        else:
            try:
                outcomes = parser(raw, request.headers, context)
            except LeadstreamError as exc:
                error = exc
        try:
            if error is not None:
                await collector.deadletter(raw, error)
            else:
                await collector.deliver(outcomes, context.source)
        except KafkaUnavailableError as exc:
            return unavailable(exc)
        if error is not None:
            status = 401 if isinstance(error, SignatureInvalidError) else 400
            return error_response(status, error.reason, str(error))
        return web.json_response({"success": True})

    return [web.post("/v1/webhooks/{provider}", handle)]


def load_json(raw: bytes) -> Any:
    from stream.collector.segment import parse_json

    return parse_json(raw)


def email_event(
    context: WebhookContext,
    item: Mapping[str, Any],
    *,
    event_type: str | None,
    provider_event: str,
    event_id: Any,
    email: Any,
    timestamp: Any,
    properties: dict[str, Any],
    user_agent: Any = None,
    user_id: Any = None,
    anonymous_id: Any = None,
) -> Outcome:
    """One provider event as an accepted canonical event or a dead letter (raw = the item)."""
    raw = orjson.dumps(item)
    try:
        if len(raw) > context.max_event_bytes:
            raise SizeViolationError(f"event of {len(raw)} bytes exceeds the limit")
        address = normalise_email(email)
        user = _ident(user_id)
        anonymous = _ident(anonymous_id)
        if not (address or user or anonymous):
            raise SchemaViolationError("no recipient email or user id: cannot tie it to a lead")
        occurred = (
            parse_time(timestamp, "timestamp") if timestamp is not None else context.received_at
        )
        check_not_future(occurred, context.received_at)
        if event_type is None:
            event_type = UNMAPPED
            properties["event_name"] = f"{context.source.name}.{provider_event}"[:256]
        event_context: dict[str, Any] = {"library": {"name": f"{context.source.name}-webhook"}}
        if isinstance(user_agent, str) and user_agent:
            event_context["userAgent"] = user_agent[:512]
        event = make_event(
            event_id=_ident(event_id) or str(uuid.uuid4()),
            event_type=event_type,
            channel=context.mapping.channel(event_type),
            occurred_at=occurred,
            received_at=context.received_at,
            anonymous_id=anonymous,
            user_id=user,
            email=address,
            account_id=None,
            source=context.source.name,
            properties={k: v for k, v in properties.items() if v is not None},
            traits=context.mapping.traits({}, address),
            context=event_context,
        )
    except LeadstreamError as exc:
        key = normalise_email(email)
        return Rejected(raw, key.encode() if key else None, exc)
    return Accepted(event, identity_key(event), event["event_id"] if event_id else None)


def _ident(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()[:512]
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None
