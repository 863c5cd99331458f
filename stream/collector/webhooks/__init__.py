"""Email and social webhooks: POST /v1/webhooks/{provider}, signatures verified, events mapped."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from stream.collector.limits import decode_body, read_body
from stream.collector.responses import error_response, timed_out, unavailable
from stream.collector.segment import Outcome, Source
from stream.collector.service import Collector
from stream.collector.webhooks import generic, mailgun, sendgrid
from stream.collector.webhooks.common import Parser, Verifier, WebhookContext
from stream.errors import (
    KafkaUnavailableError,
    LeadstreamError,
    RedisUnavailableError,
    RequestTimeoutError,
    SignatureInvalidError,
    SizeViolationError,
)
from stream.metrics import COLLECTOR_REFUSALS


@dataclass(frozen=True)
class Provider:
    """One provider's signature check and parser, and the secret that switches it on."""

    verify: Verifier
    parse: Parser
    option: str
    """CollectorOptions field of its secret."""
    setting: str
    """The variable that sets it, for messages."""


PROVIDERS = {
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


def routes(collector: Collector) -> list[web.RouteDef]:
    settings = collector.settings

    async def handle(request: web.Request) -> web.StreamResponse:
        name = request.match_info["provider"]
        if name not in PROVIDERS:
            return error_response(404, "unknown_source", f"no webhook provider {name!r}")
        provider = PROVIDERS[name]
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
