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
    check_text,
    identity_key,
    make_event,
    normalise_email,
)
from stream.errors import (
    KafkaUnavailableError,
    LeadstreamError,
    RedisUnavailableError,
    RequestTimeoutError,
    SchemaViolationError,
    SignatureInvalidError,
    SizeViolationError,
)
from stream.metrics import COLLECTOR_REFUSALS

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


Verifier = Callable[[bytes, Mapping[str, str], WebhookContext], "str | None"]
"""Checks the signature and timestamp; returns the token or id to remember against replays
(None when the provider has none); SignatureInvalidError when the request is not authentic."""
Parser = Callable[[bytes, Mapping[str, str], WebhookContext], list[Outcome]]
"""Maps a verified body to outcomes."""


@dataclass(frozen=True)
class Provider:
    verify: Verifier
    parse: Parser
    option: str
    """CollectorOptions field of its secret."""
    setting: str
    """The variable that sets it, for messages."""


def _providers() -> dict[str, Provider]:
    from stream.collector.webhooks import generic, mailgun, sendgrid

    return {
        "sendgrid": Provider(
            sendgrid.verify_request,
            sendgrid.parse,
            "sendgrid_public_key",
            "LEADSTREAM_SENDGRID_PUBLIC_KEY",
        ),
        "mailgun": Provider(
            mailgun.verify_request,
            mailgun.parse,
            "mailgun_signing_key",
            "LEADSTREAM_MAILGUN_SIGNING_KEY",
        ),
        "generic": Provider(
            generic.verify_request,
            generic.parse,
            "generic_webhook_secret",
            "LEADSTREAM_GENERIC_WEBHOOK_SECRET",
        ),
    }


def check_timestamp(timestamp: Any, context: WebhookContext, what: str) -> None:
    """SignatureInvalidError unless `timestamp` (unix seconds) is within the tolerance of now."""
    try:
        stamp = float(timestamp)
    except (TypeError, ValueError):
        raise SignatureInvalidError(f"{what} is not a unix time") from None
    age = abs(context.received_at.timestamp() - stamp)
    if not age <= context.tolerance_seconds:  # also refuses nan
        raise SignatureInvalidError(
            f"{what} is {age:.0f}s away from now (tolerance {context.tolerance_seconds:g}s)"
        )


def routes(collector: Collector) -> list[web.RouteDef]:
    from stream.collector.app import error_response, timed_out, unavailable

    providers = _providers()
    settings = collector.settings

    async def handle(request: web.Request) -> web.StreamResponse:
        name = request.match_info["provider"]
        if name not in providers:
            return error_response(404, "unknown_source", f"no webhook provider {name!r}")
        provider = providers[name]
        secret = str(getattr(collector.options, provider.option))
        if not secret:
            return error_response(
                404, "unknown_source", f"{name} webhook is off: set {provider.setting}"
            )
        context = WebhookContext(
            Source(name, "webhook", f"webhook:{name}"),
            collector.mapping,
            collector.now(),
            settings.max_event_bytes,
            secret,
            collector.options.webhook_tolerance_seconds,
        )
        body = b""
        try:
            body = await read_body(
                request, settings.max_request_bytes, collector.options.body_timeout_seconds
            )
            raw = decode_body(
                body, request.headers.get("Content-Encoding", ""), settings.max_request_bytes
            )
            token = provider.verify(raw, request.headers, context)
        except SizeViolationError as exc:
            return error_response(413, exc.reason, str(exc))
        except RequestTimeoutError as exc:
            return timed_out(exc)
        except LeadstreamError as exc:
            # Not verified (bad signature, or a body too broken to find one in): nothing of it
            # is trusted, so only a small, rate-limited dead letter is written.
            refused = (
                exc
                if isinstance(exc, SignatureInvalidError)
                else SignatureInvalidError(f"not verified: {exc}")
            )
            try:
                await collector.refusal(request, body, refused)
            except KafkaUnavailableError as unavailable_exc:
                return unavailable(unavailable_exc)
            return error_response(401, refused.reason, str(refused))
        assert collector.replay is not None
        try:
            if token is not None and not await collector.replay.first_use(name, token):
                replayed = SignatureInvalidError(
                    f"{name} request replayed: this signature's token or id was already used"
                )
                COLLECTOR_REFUSALS.labels("replayed").inc()
                await collector.refusal(request, body, replayed)
                return error_response(401, "replayed", str(replayed))
        except (RedisUnavailableError, KafkaUnavailableError) as exc:
            return unavailable(exc)
        error: LeadstreamError | None = None
        outcomes: list[Outcome] = []
        try:
            outcomes = provider.parse(raw, request.headers, context)
        except LeadstreamError as exc:
            error = exc
        try:
            if error is not None:
                await collector.deadletter(raw, error)
            else:
                await collector.deliver(outcomes, context.source)
        except KafkaUnavailableError as exc:
            if token is not None:  # the provider retries with the same token: let it pass
                await collector.replay.forget(name, token)
            return unavailable(exc)
        if error is not None:
            return error_response(400, error.reason, str(error))
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
        if isinstance(email, str):
            check_text("email", email)
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
        return check_text("id", value.strip()[:512])
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None
