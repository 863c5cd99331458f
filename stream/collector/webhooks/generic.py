"""Generic social-engagement webhook, signed per Standard Webhooks (`webhook-id`,
`webhook-timestamp`, `webhook-signature` = v1,base64 HMAC-SHA256 of `id.timestamp.body`).

The signature covers the id and the time, so a captured request cannot be re-sent with a new
timestamp, and the id is remembered for twice the tolerance, so it cannot be re-sent at all.
Every engagement needs its own `id` too: without one a resend would be scored again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from stream.collector.segment import Outcome, Rejected, parse_json
from stream.collector.webhooks.common import WebhookContext, check_timestamp, email_event
from stream.errors import SchemaViolationError, SettingsError, SignatureInvalidError

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except ValueError:
        raise SettingsError("LEADSTREAM_GENERIC_WEBHOOK_SECRET: want whsec_<base64>") from None


def sign(secret: str, msg_id: str, timestamp: int | datetime, raw: bytes) -> str:
    """The `webhook-signature` value a sender puts on `raw`: `v1,<base64>`."""
    stamp = int(timestamp.timestamp()) if isinstance(timestamp, datetime) else int(timestamp)
    return _signature(secret, f"{msg_id}.{stamp}.".encode() + raw)


def _signature(secret: str, content: bytes) -> str:
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify_request(raw: bytes, headers: Mapping[str, str], context: WebhookContext) -> str:
    """Check id, timestamp and signature; returns the id to remember against replays."""
    msg_id = headers.get(ID_HEADER, "").strip()
    timestamp = headers.get(TIMESTAMP_HEADER, "").strip()
    given = headers.get(SIGNATURE_HEADER, "")
    if not msg_id or not timestamp or not given:
        raise SignatureInvalidError(
            f"missing {ID_HEADER}, {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} (Standard Webhooks)"
        )
    # Strict digits, and the signature is checked over this exact text (`sign` of its int
    # would also match `01700000000` or, before, any Unicode digits).
    timestamp = check_timestamp(timestamp, context, TIMESTAMP_HEADER)
    expected = _signature(context.secret, f"{msg_id}.{timestamp}.".encode() + raw).encode()
    # Several signatures, space separated, during a secret rotation: any one may match.
    if not any(hmac.compare_digest(expected, part.encode()) for part in given.split()):
        raise SignatureInvalidError(f"{SIGNATURE_HEADER} does not match id, timestamp and body")
    return msg_id


def parse(raw: bytes, headers: Mapping[str, str], context: WebhookContext) -> list[Outcome]:
    """Map each engagement: {id, network, action, email|user_id|anonymous_id, …}."""
    body = parse_json(raw)
    items = body if isinstance(body, list) else [body]
    if not items or not all(isinstance(i, dict) for i in items):
        raise SchemaViolationError("want an engagement object or an array of them")
    return [_event(context, item) for item in items]


def _event(context: WebhookContext, item: dict[str, Any]) -> Outcome:
    if (
        not isinstance(item.get("id"), str | int)
        or isinstance(item.get("id"), bool)
        or (isinstance(item.get("id"), str) and not item["id"].strip())
    ):
        return Rejected(
            orjson.dumps(item),
            None,
            SchemaViolationError("engagement without an id: a resend would be scored again"),
        )
    extra = item.get("properties")
    extra = extra if isinstance(extra, dict) else {}
    properties: dict[str, Any] = {
        **extra,
        "network": item.get("network"),
        "action": item.get("action"),
        "post_id": item.get("post_id"),
        "url": item.get("url"),
    }
    return email_event(
        context,
        item,
        event_type="social.engagement",
        provider_event="engagement",
        event_id=item.get("id"),
        email=item.get("email"),
        timestamp=item.get("occurred_at", item.get("timestamp")),
        properties=properties,
        user_id=item.get("user_id"),
        anonymous_id=item.get("anonymous_id"),
    )
