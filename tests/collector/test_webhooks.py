"""SendGrid, Mailgun and generic webhooks: real payload formats, valid and forged signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from stream.collector.app import create_app
from stream.collector.service import EXCERPT_BYTES, CollectorOptions
from stream.collector.webhooks import generic
from stream.settings import Settings

from .conftest import FakeProducer, start_server, validate_canonical

Client = TestClient[web.Request, web.Application]
MAILGUN_KEY = "key-mailgun-signing-123"
GENERIC_SECRET = "whsec_" + base64.b64encode(b"social-secret-of-32-random-bytes").decode()
PRIVATE_KEY = ec.generate_private_key(ec.SECP256R1())
PUBLIC_KEY = base64.b64encode(
    PRIVATE_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode()


@pytest.fixture
async def hooks(
    unit_settings: Settings, producer: FakeProducer, redis_client: aioredis.Redis
) -> AsyncIterator[Client]:
    options = CollectorOptions(
        sendgrid_public_key=PUBLIC_KEY,
        mailgun_signing_key=MAILGUN_KEY,
        generic_webhook_secret=GENERIC_SECRET,
    )
    app = create_app(unit_settings, producer, options=options, redis=redis_client)
    async with TestClient(await start_server(app)) as client:
        yield client


def sendgrid_sign(payload: bytes, timestamp: str | None = None) -> dict[str, str]:
    """What SendGrid does: ECDSA P-256/SHA-256 over timestamp + payload, base64 DER."""
    timestamp = timestamp or str(int(time.time()))
    signature = PRIVATE_KEY.sign(timestamp.encode() + payload, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        "Content-Type": "application/json",
    }


def sendgrid_events() -> list[dict[str, Any]]:
    base = {
        "email": "ada@acme.io",
        "timestamp": 1740830000,
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
    }
    return [
        {
            **base,
            "event": "processed",
            "sg_event_id": "sg-proc",
            "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        },
        {**base, "event": "delivered", "sg_event_id": "sg-del", "response": "250 OK"},
        {
            **base,
            "event": "open",
            "sg_event_id": "sg-open",
            "useragent": "Mozilla/5.0",
            "ip": "255.255.255.255",
            "sg_machine_open": False,
        },
        {**base, "event": "open", "sg_event_id": "sg-mpp", "sg_machine_open": True},
        {
            **base,
            "event": "click",
            "sg_event_id": "sg-click",
            "url": "https://acme.com/pricing",
            "url_offset": {"index": 0, "type": "html"},
        },
        {
            **base,
            "event": "bounce",
            "sg_event_id": "sg-bounce",
            "type": "bounce",
            "reason": "550 no such user",
            "status": "5.1.1",
        },
        {**base, "event": "bounce", "sg_event_id": "sg-blocked", "type": "blocked"},
        {**base, "event": "spamreport", "sg_event_id": "sg-spam"},
        {**base, "event": "unsubscribe", "sg_event_id": "sg-unsub"},
        {**base, "event": "group_unsubscribe", "sg_event_id": "sg-gunsub", "asm_group_id": 10},
        {"event": "open", "sg_event_id": "sg-noemail", "timestamp": 1740830000},
    ]


async def test_sendgrid_signed_batch(hooks: Client, producer: FakeProducer) -> None:
    payload = orjson.dumps(sendgrid_events())
    response = await hooks.post(
        "/v1/webhooks/sendgrid", data=payload, headers=sendgrid_sign(payload)
    )
    assert response.status == 200, await response.text()
    events = {e["event_id"]: e for e in producer.events()}
    assert {k: e["type"] for k, e in events.items()} == {
        "sg-proc": "unmapped",
        "sg-del": "unmapped",
        "sg-open": "email.open",
        "sg-click": "email.click",
        "sg-bounce": "email.hard_bounce",
        "sg-blocked": "unmapped",
        "sg-spam": "email.spam_complaint",
        "sg-unsub": "email.unsubscribe",
        "sg-gunsub": "email.unsubscribe",
    }  # the machine open is dropped, the one without a recipient is dead-lettered
    assert producer.reasons() == ["schema_violation"]
    opened = events["sg-open"]
    assert opened["channel"] == "email" and opened["source"] == "sendgrid"
    assert opened["email"] == "ada@acme.io" and opened["occurred_at"] == "2025-03-01T11:53:20.000Z"
    assert opened["properties"]["message_id"].startswith("14c5d75ce93")
    assert "ip" not in orjson.dumps(opened).decode()
    assert events["sg-click"]["properties"]["url"] == "https://acme.com/pricing"
    assert events["sg-proc"]["properties"]["event_name"] == "sendgrid.processed"
    for event in events.values():
        validate_canonical(event)
    assert all(r.key == b"ada@acme.io" for r in producer.records if r.topic.endswith("email"))
    # SendGrid retries the same batch: nothing is produced twice
    response = await hooks.post(
        "/v1/webhooks/sendgrid", data=payload, headers=sendgrid_sign(payload)
    )
    assert response.status == 200
    assert len(producer.events()) == len(events)


@pytest.mark.parametrize(
    "forge",
    [
        lambda p, h: (p + b" ", h),  # payload changed after signing
        lambda p, h: (p, {**h, "X-Twilio-Email-Event-Webhook-Timestamp": "1"}),
        lambda p, h: (p, {**h, "X-Twilio-Email-Event-Webhook-Signature": "bm90IGEgc2ln"}),
        lambda p, h: (p, {**h, "X-Twilio-Email-Event-Webhook-Signature": "!!"}),
        lambda p, h: (p, {"Content-Type": "application/json"}),
    ],
)
async def test_sendgrid_forged_is_401_and_dead_lettered(
    hooks: Client, producer: FakeProducer, forge: Any
) -> None:
    payload = orjson.dumps(sendgrid_events()[:3])
    data, headers = forge(payload, sendgrid_sign(payload))
    response = await hooks.post("/v1/webhooks/sendgrid", data=data, headers=headers)
    assert response.status == 401
    assert (await response.json())["code"] == "signature_invalid"
    assert producer.events() == []
    assert producer.reasons() == ["signature_invalid"]
    assert producer.deadletters()[0].value == data[:EXCERPT_BYTES]


async def test_sendgrid_signed_garbage_is_400(hooks: Client, producer: FakeProducer) -> None:
    for payload in (b"{not json", b'{"an": "object"}'):
        response = await hooks.post(
            "/v1/webhooks/sendgrid", data=payload, headers=sendgrid_sign(payload)
        )
        assert response.status == 400
    assert producer.reasons() == ["invalid_json", "schema_violation"]


def mailgun_payload(
    event_data: dict[str, Any],
    key: str = MAILGUN_KEY,
    *,
    token: str | None = None,
    timestamp: str | None = None,
) -> bytes:
    """A Mailgun webhook body as Mailgun signs it: a fresh token per delivery."""
    timestamp = timestamp or str(int(time.time()))
    token = token or uuid.uuid4().hex + uuid.uuid4().hex[:18]
    digest = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return orjson.dumps(
        {
            "signature": {"timestamp": timestamp, "token": token, "signature": digest},
            "event-data": event_data,
        }
    )


def mailgun_event(event: str, **extra: Any) -> dict[str, Any]:
    return {
        "event": event,
        "id": f"mg-{event}-{len(extra)}",
        "timestamp": 1740830000.123456,
        "recipient": "bob@acme.io",
        "message": {"headers": {"message-id": "20250301.1@mg.acme.io", "to": "bob@acme.io"}},
        "client-info": {
            "client-name": "Thunderbird",
            "client-type": "mobile browser",
            "user-agent": "Mozilla/5.0",
            "device-type": "mobile",
            "client-os": "iOS",
        },
        "geolocation": {"country": "US", "region": "CA", "city": "San Francisco"},
        "ip": "50.56.129.169",
        "tags": ["newsletter"],
        "user-variables": {"user_id": "u-77"},
        **extra,
    }


@pytest.mark.parametrize(
    ("event_data", "expected_type"),
    [
        (mailgun_event("opened"), "email.open"),
        (mailgun_event("clicked", url="https://acme.com/product"), "email.click"),
        (mailgun_event("unsubscribed"), "email.unsubscribe"),
        (mailgun_event("complained"), "email.spam_complaint"),
        (mailgun_event("failed", severity="permanent"), "email.hard_bounce"),
        (mailgun_event("failed", severity="temporary"), "unmapped"),
        (mailgun_event("delivered"), "unmapped"),
    ],
)
async def test_mailgun_events(
    hooks: Client, producer: FakeProducer, event_data: dict[str, Any], expected_type: str
) -> None:
    response = await hooks.post("/v1/webhooks/mailgun", data=mailgun_payload(event_data))
    assert response.status == 200, await response.text()
    [event] = producer.events()
    assert event["type"] == expected_type
    assert (event["event_id"], event["email"], event["user_id"]) == (
        event_data["id"],
        "bob@acme.io",
        "u-77",
    )
    assert event["properties"]["message_id"] == "20250301.1@mg.acme.io"
    assert event["occurred_at"] == "2025-03-01T11:53:20.123Z"
    assert producer.records[0].key == b"u-77"
    validate_canonical(event)


async def test_mailgun_bot_opens_are_dropped(hooks: Client, producer: FakeProducer) -> None:
    data = mailgun_event("opened")
    data["client-info"]["bot"] = "apple"
    response = await hooks.post("/v1/webhooks/mailgun", data=mailgun_payload(data))
    assert response.status == 200
    assert producer.records == []


@pytest.mark.parametrize(
    "payload",
    [
        mailgun_payload(mailgun_event("opened"), key="wrong-key"),
        orjson.dumps({"event-data": mailgun_event("opened")}),
        orjson.dumps({"signature": {"timestamp": "1", "token": "t"}, "event-data": {}}),
        orjson.dumps([1, 2]),
    ],
)
async def test_mailgun_forged_is_401(hooks: Client, producer: FakeProducer, payload: bytes) -> None:
    response = await hooks.post("/v1/webhooks/mailgun", data=payload)
    assert response.status == 401
    assert producer.reasons() == ["signature_invalid"]
    assert producer.events() == []


async def test_webhook_timestamp_tolerance_is_on_by_default(hooks: Client) -> None:
    fresh = mailgun_payload(mailgun_event("opened"))
    assert (await hooks.post("/v1/webhooks/mailgun", data=fresh)).status == 200
    stale = mailgun_payload(mailgun_event("opened"), timestamp=str(int(time.time()) - 3600))
    response = await hooks.post("/v1/webhooks/mailgun", data=stale)
    assert response.status == 401
    assert "tolerance 300s" in (await response.json())["message"]


def generic_headers(payload: bytes, msg_id: str = "msg-1", at: int | None = None) -> dict[str, str]:
    """What a Standard Webhooks sender puts on a request."""
    at = int(time.time()) if at is None else at
    return {
        generic.ID_HEADER: msg_id,
        generic.TIMESTAMP_HEADER: str(at),
        generic.SIGNATURE_HEADER: generic.sign(GENERIC_SECRET, msg_id, at, payload),
    }


async def test_generic_social_webhook(hooks: Client, producer: FakeProducer) -> None:
    payload = orjson.dumps(
        [
            {
                "id": "li-1",
                "network": "linkedin",
                "action": "comment",
                "email": "eve@acme.io",
                "occurred_at": "2025-03-01T10:00:00Z",
                "post_id": "p1",
            },
            {"id": "li-2", "network": "linkedin", "action": "like"},
        ]
    )
    response = await hooks.post(
        "/v1/webhooks/generic", data=payload, headers=generic_headers(payload)
    )
    assert response.status == 200
    [event] = producer.events()
    assert (event["type"], event["channel"], event["event_id"]) == (
        "social.engagement",
        "social",
        "li-1",
    )
    assert event["properties"] == {"network": "linkedin", "action": "comment", "post_id": "p1"}
    assert producer.records[0].topic == "unit.leads.events.social"
    assert producer.reasons() == ["schema_violation"]  # li-2 names nobody
    headers = {**generic_headers(payload, "msg-2"), generic.SIGNATURE_HEADER: "v1,AAAA"}
    forged = await hooks.post("/v1/webhooks/generic", data=payload, headers=headers)
    assert forged.status == 401


async def test_unknown_or_unconfigured_provider_is_404(
    client: Client, producer: FakeProducer
) -> None:
    assert (await client.post("/v1/webhooks/postmark", data=b"[]")).status == 404
    assert (await client.post("/v1/webhooks/sendgrid", data=b"[]")).status == 404  # no key set
    assert producer.records == []


async def test_webhook_kafka_down_is_503(hooks: Client, producer: FakeProducer) -> None:
    producer.available = False
    payload = orjson.dumps(sendgrid_events()[:3])
    response = await hooks.post(
        "/v1/webhooks/sendgrid", data=payload, headers=sendgrid_sign(payload)
    )
    assert response.status == 503
