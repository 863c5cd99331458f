"""SendGrid Event Webhook: ECDSA P-256 signed batches of delivery and engagement events."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

from stream.collector.segment import Dropped, Outcome, parse_json
from stream.collector.webhooks.common import WebhookContext, check_timestamp, email_event
from stream.errors import SchemaViolationError, SettingsError, SignatureInvalidError

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
EVENT_TYPES = {
    "open": "email.open",
    "click": "email.click",
    "unsubscribe": "email.unsubscribe",
    "group_unsubscribe": "email.unsubscribe",
    "spamreport": "email.spam_complaint",
}


def public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The verification key as SendGrid shows it (base64 DER), or PEM."""
    try:
        if "BEGIN PUBLIC KEY" in text:
            key = load_pem_public_key(text.encode())
        else:
            key = load_der_public_key(base64.b64decode(text.strip()))
    except (ValueError, binascii.Error) as exc:
        raise SettingsError(
            f"LEADSTREAM_SENDGRID_PUBLIC_KEY: not a base64 DER or PEM public key ({exc})"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SettingsError("LEADSTREAM_SENDGRID_PUBLIC_KEY: want an ECDSA public key")
    return key


def verify(raw: bytes, headers: Mapping[str, str], key_text: str, context: WebhookContext) -> None:
    """Check the ECDSA signature over timestamp + raw payload and the timestamp's age.

    SendGrid has no token to remember; the tolerance bounds a replay to minutes, and each
    event's sg_event_id is deduped downstream.
    """
    signature = headers.get(SIGNATURE_HEADER)
    timestamp = headers.get(TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise SignatureInvalidError(f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER}")
    check_timestamp(timestamp, context, TIMESTAMP_HEADER)  # strict: digits only
    try:
        der = base64.b64decode(signature, validate=True)
        public_key(key_text).verify(der, timestamp.encode() + raw, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        raise SignatureInvalidError("SendGrid signature does not match the payload") from None


def verify_request(raw: bytes, headers: Mapping[str, str], context: WebhookContext) -> None:
    verify(raw, headers, context.secret, context)


def parse(raw: bytes, headers: Mapping[str, str], context: WebhookContext) -> list[Outcome]:
    body = parse_json(raw)
    if not isinstance(body, list):
        raise SchemaViolationError("SendGrid posts a JSON array of events")
    return [_event(context, item) for item in body]


def _event(context: WebhookContext, item: Any) -> Outcome:
    if not isinstance(item, dict):
        item = {"value": item}
    kind = str(item.get("event", ""))
    if kind == "open" and item.get("sg_machine_open") is True:
        return Dropped("machine_open")
    event_type = EVENT_TYPES.get(kind)
    if kind == "bounce" and item.get("type", "bounce") == "bounce":
        event_type = "email.hard_bounce"
    properties: dict[str, Any] = {
        "message_id": item.get("sg_message_id"),
        "provider_event": kind,
        "url": item.get("url") if kind == "click" else None,
        "category": item.get("category"),
        "asm_group_id": item.get("asm_group_id"),
        "bounce_type": item.get("type") if kind == "bounce" else None,
    }
    return email_event(
        context,
        item,
        event_type=event_type,
        provider_event=kind or "unknown",
        event_id=item.get("sg_event_id"),
        email=item.get("email"),
        timestamp=item.get("timestamp"),
        properties=properties,
        user_agent=item.get("useragent"),
        user_id=item.get("user_id", item.get("userId")),
        anonymous_id=item.get("anonymous_id", item.get("anonymousId")),
    )
