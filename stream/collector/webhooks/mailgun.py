"""Mailgun webhooks (JSON): HMAC-SHA256 of timestamp + token with the webhook signing key."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from stream.collector.segment import Dropped, Outcome, parse_json
from stream.collector.webhooks.common import WebhookContext, check_timestamp, email_event
from stream.errors import SchemaViolationError, SignatureInvalidError

EVENT_TYPES = {
    "opened": "email.open",
    "clicked": "email.click",
    "unsubscribed": "email.unsubscribe",
    "complained": "email.spam_complaint",
}


def verify(signature: Any, signing_key: str, context: WebhookContext) -> str:
    """Check `signature` = {timestamp, token, signature}; returns the replay key to remember.

    Mailgun signs timestamp + token only, not the body, so one captured signature would let
    anyone post any event. Two things close that: the timestamp must be within the tolerance,
    and the signed text may be used once (the caller remembers it for twice the tolerance).
    The replay key is a digest of exactly the signed text, not of the token: the boundary
    between timestamp and token is not signed, so a key of the token alone could be changed
    by moving characters across it (the timestamp is also parsed strictly, `unix_time`).
    """
    if not isinstance(signature, dict):
        raise SignatureInvalidError("Mailgun payload has no signature object")
    timestamp, token, digest = (signature.get(k) for k in ("timestamp", "token", "signature"))
    if not all(isinstance(v, str | int) and not isinstance(v, bool) for v in (timestamp, token)):
        raise SignatureInvalidError("Mailgun signature lacks timestamp or token")
    if not isinstance(digest, str):
        raise SignatureInvalidError("Mailgun signature lacks the signature")
    signed = (check_timestamp(timestamp, context, "Mailgun timestamp") + str(token)).encode()
    expected = hmac.new(signing_key.encode(), signed, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, digest.strip().lower()):
        raise SignatureInvalidError("Mailgun signature does not match")
    return hashlib.sha256(signed).hexdigest()


def verify_request(raw: bytes, headers: Mapping[str, str], context: WebhookContext) -> str:
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise SignatureInvalidError("Mailgun payload is not an object with a signature")
    return verify(body.get("signature"), context.secret, context)


def parse(raw: bytes, headers: Mapping[str, str], context: WebhookContext) -> list[Outcome]:
    body = parse_json(raw)
    data = body.get("event-data")
    if not isinstance(data, dict):
        raise SchemaViolationError("Mailgun payload has no event-data object")
    kind = str(data.get("event", ""))
    client = _obj(data.get("client-info"))
    if kind in ("opened", "clicked") and client.get("bot"):
        return [Dropped("machine_open" if kind == "opened" else "machine_click")]
    event_type = EVENT_TYPES.get(kind)
    if kind == "failed" and data.get("severity") == "permanent":
        event_type = "email.hard_bounce"
    message_headers = _obj(_obj(data.get("message")).get("headers"))
    variables = _obj(data.get("user-variables"))
    properties: dict[str, Any] = {
        "message_id": message_headers.get("message-id"),
        "provider_event": kind,
        "url": data.get("url") if kind == "clicked" else None,
        "tags": data.get("tags") if isinstance(data.get("tags"), list) else None,
        "severity": data.get("severity") if kind == "failed" else None,
    }
    return [
        email_event(
            context,
            data,
            event_type=event_type,
            provider_event=kind or "unknown",
            event_id=data.get("id"),
            email=data.get("recipient"),
            timestamp=data.get("timestamp"),
            properties=properties,
            user_agent=client.get("user-agent"),
            user_id=variables.get("user_id", variables.get("userId")),
            anonymous_id=variables.get("anonymous_id", variables.get("anonymousId")),
        )
    ]


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
