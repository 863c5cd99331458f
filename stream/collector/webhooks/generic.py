"""Generic social-engagement webhook: HMAC-SHA256 of the raw body with a shared secret."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from stream.collector.segment import Outcome
from stream.collector.webhooks import WebhookContext, email_event, load_json
from stream.errors import SchemaViolationError, SignatureInvalidError

SIGNATURE_HEADER = "X-Leadstream-Signature"


def sign(secret: str, raw: bytes) -> str:
    """The header value a sender puts on `raw`: `sha256=<hex>`."""
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def parse(raw: bytes, headers: Mapping[str, str], context: WebhookContext) -> list[Outcome]:
    """Verify, then map each engagement: {id, network, action, email|user_id|anonymous_id, …}."""
    given = headers.get(SIGNATURE_HEADER, "").strip()
    if not hmac.compare_digest(sign(context.secret, raw), given):
        raise SignatureInvalidError(f"{SIGNATURE_HEADER} does not match the body")
    body = load_json(raw)
    items = body if isinstance(body, list) else [body]
    if not items or not all(isinstance(i, dict) for i in items):
        raise SchemaViolationError("want an engagement object or an array of them")
    return [_event(context, item) for item in items]


def _event(context: WebhookContext, item: dict[str, Any]) -> Outcome:
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
