"""Hostile requests against the public app (issue 12): each with the status, dead letter or
refusal it must get. Real Redis behind replay protection and transport dedupe."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from stream.collector.app import create_app
from stream.collector.pixel import GIF
from stream.collector.service import EXCERPT_BYTES, CollectorOptions
from stream.metrics import COLLECTOR_REFUSALS_UNRECORDED
from stream.settings import Settings

from .conftest import BROWSER_KEY, SERVER_KEY, FakeProducer, basic, start_server, track
from .test_webhooks import (
    GENERIC_SECRET,
    MAILGUN_KEY,
    PRIVATE_KEY,
    PUBLIC_KEY,
    generic_headers,
    mailgun_event,
    mailgun_payload,
    sendgrid_events,
    sendgrid_sign,
)

Client = TestClient[web.Request, web.Application]


@pytest.fixture
def secure_options() -> CollectorOptions:
    return CollectorOptions(
        sendgrid_public_key=PUBLIC_KEY,
        mailgun_signing_key=MAILGUN_KEY,
        generic_webhook_secret=GENERIC_SECRET,
        redirect_hosts=("example.com",),
        refused_deadletters_per_minute=3,
    )


@pytest.fixture
async def hooks(
    unit_settings: Settings,
    producer: FakeProducer,
    redis_client: aioredis.Redis,
    secure_options: CollectorOptions,
) -> AsyncIterator[Client]:
    app = create_app(unit_settings, producer, options=secure_options, redis=redis_client)
    async with TestClient(await start_server(app)) as client:
        yield client


def headers_of(record: Any) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers}


# -- 2. Mailgun: a captured signature cannot be reused ----------------------------------------


async def test_mailgun_signature_reused_with_another_body_is_refused(
    hooks: Client, producer: FakeProducer
) -> None:
    token = "captured-token-0123456789abcdef0123456789abcdef"
    first = mailgun_payload(mailgun_event("opened"), token=token)
    assert (await hooks.post("/v1/webhooks/mailgun", data=first)).status == 200
    # The attacker keeps signature, timestamp and token and swaps the event: a spam complaint
    forged = orjson.loads(first)
    forged["event-data"] = mailgun_event("complained", recipient="victim@acme.io")
    response = await hooks.post("/v1/webhooks/mailgun", data=orjson.dumps(forged))
    assert response.status == 401
    assert (await response.json())["code"] == "replayed"
    assert [e["type"] for e in producer.events()] == ["email.open"]
    assert producer.reasons() == ["signature_invalid"]  # the small refusal record


async def test_mailgun_token_is_released_when_kafka_was_down(
    hooks: Client, producer: FakeProducer
) -> None:
    payload = mailgun_payload(mailgun_event("clicked"))
    producer.available = False
    assert (await hooks.post("/v1/webhooks/mailgun", data=payload)).status == 503
    producer.available = True
    # Mailgun retries the very same request: it must pass, once
    assert (await hooks.post("/v1/webhooks/mailgun", data=payload)).status == 200
    assert (await hooks.post("/v1/webhooks/mailgun", data=payload)).status == 401
    assert len(producer.events()) == 1


# -- 3. Replays: SendGrid's old timestamps, the generic webhook's ids -------------------------


async def test_sendgrid_with_a_2017_timestamp_is_refused(
    hooks: Client, producer: FakeProducer
) -> None:
    payload = orjson.dumps(sendgrid_events()[:3])
    response = await hooks.post(
        "/v1/webhooks/sendgrid", data=payload, headers=sendgrid_sign(payload, "1500000000")
    )
    assert response.status == 401
    assert "away from now" in (await response.json())["message"]
    assert producer.events() == []


async def test_generic_webhook_resend_of_the_same_id_is_refused(
    hooks: Client, producer: FakeProducer
) -> None:
    payload = orjson.dumps({"id": "li-9", "network": "linkedin", "email": "eve@acme.io"})
    headers = generic_headers(payload, "msg-9")
    assert (await hooks.post("/v1/webhooks/generic", data=payload, headers=headers)).status == 200
    again = await hooks.post("/v1/webhooks/generic", data=payload, headers=headers)
    assert again.status == 401 and (await again.json())["code"] == "replayed"
    assert len(producer.events()) == 1


@pytest.mark.parametrize(
    "forge",
    [
        # the old scheme (body only) is not accepted any more
        lambda p, h: {k: v for k, v in h.items() if k != "webhook-id"},
        lambda p, h: {**h, "webhook-id": "another-id"},  # id not covered by the signature
        lambda p, h: {**h, "webhook-timestamp": str(int(time.time()) + 1)},
        lambda p, h: generic_headers(p, "msg-old", at=int(time.time()) - 3600),
        lambda p, h: {**h, "webhook-timestamp": "soon"},
    ],
)
async def test_generic_webhook_signature_covers_id_and_time(
    hooks: Client, producer: FakeProducer, forge: Any
) -> None:
    payload = orjson.dumps({"id": "li-1", "network": "x", "email": "eve@acme.io"})
    headers = forge(payload, generic_headers(payload, "msg-1"))
    response = await hooks.post("/v1/webhooks/generic", data=payload, headers=headers)
    assert response.status == 401
    assert producer.events() == []


async def test_generic_engagement_without_an_id_is_dead_lettered(
    hooks: Client, producer: FakeProducer
) -> None:
    payload = orjson.dumps(
        [{"network": "x", "email": "eve@acme.io"}, {"id": "", "network": "x", "email": "e@a.io"}]
    )
    response = await hooks.post(
        "/v1/webhooks/generic", data=payload, headers=generic_headers(payload, "msg-noid")
    )
    assert response.status == 200
    assert producer.events() == []
    assert producer.reasons() == ["schema_violation", "schema_violation"]
    assert "without an id" in headers_of(producer.deadletters()[0])["error"]


# -- 4. Refused signatures: a small dead letter, and not many of them -------------------------


async def test_forged_sendgrid_stores_an_excerpt_not_the_body(
    hooks: Client, producer: FakeProducer
) -> None:
    body = orjson.dumps([{"event": "open", "email": "a@b.io", "pad": "x" * 489_900}])
    assert len(body) > 489_900
    headers = {**sendgrid_sign(b"something else"), "User-Agent": "attacker/1"}
    response = await hooks.post("/v1/webhooks/sendgrid", data=body, headers=headers)
    assert response.status == 401
    [letter] = producer.deadletters()
    assert letter.value == body[:EXCERPT_BYTES] and len(letter.value) == 1024
    meta = headers_of(letter)
    assert meta["reason"] == "signature_invalid"
    assert meta["body_bytes"] == str(len(body))
    assert meta["http_user-agent"] == "attacker/1"
    assert meta["client_address"] == "127.0.0.1"


async def test_refusal_dead_letters_are_rate_limited_per_client_address(
    hooks: Client, producer: FakeProducer
) -> None:
    before = COLLECTOR_REFUSALS_UNRECORDED._value.get()
    payload = orjson.dumps(sendgrid_events()[:1])
    for _ in range(8):
        response = await hooks.post(
            "/v1/webhooks/sendgrid", data=payload, headers=sendgrid_sign(b"other")
        )
        assert response.status == 401  # every one is still refused
    assert len(producer.deadletters()) == 3  # refused_deadletters_per_minute
    assert COLLECTOR_REFUSALS_UNRECORDED._value.get() - before == 5


async def test_mailgun_unreadable_body_counts_as_unverified(
    hooks: Client, producer: FakeProducer
) -> None:
    response = await hooks.post("/v1/webhooks/mailgun", data=b"{not json" + b"x" * 5000)
    assert response.status == 401
    [letter] = producer.deadletters()
    assert len(letter.value) == EXCERPT_BYTES
    assert headers_of(letter)["reason"] == "signature_invalid"


# -- 5. Control characters ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        track(anonymousId="nul\u0000user"),
        track(userId="line\nbreak"),
        track(messageId="m\x1b[31m"),
        track(event="Ebook\x07Downloaded"),
        track(event="Ebook Downloaded\u2028"),
        track(context={"traits": {"email\r\nx-header": "y", "email": "a@b.io"}}),
        track(context={"traits": {"email": "ada\u0000@acme.io"}}),
        track(properties={"asset_id": "e-1", "bad\u0085key": 1}),
    ],
)
async def test_control_characters_are_400_and_dead_lettered(
    client: Client, producer: FakeProducer, message: dict[str, Any]
) -> None:
    response = await client.post(
        "/v1/track", data=orjson.dumps(message), headers=basic(BROWSER_KEY)
    )
    assert response.status == 400
    body = await response.json()
    assert body["code"] == "schema_violation" and "control characters" in body["message"]
    assert producer.events() == []
    assert producer.reasons() == ["schema_violation"]


async def test_control_characters_in_a_batch_dead_letter_that_event_only(
    client: Client, producer: FakeProducer
) -> None:
    body = {"batch": [track(messageId="ok"), track(anonymousId="a\x00b", messageId="bad")]}
    response = await client.post("/v1/batch", data=orjson.dumps(body), headers=basic(BROWSER_KEY))
    assert response.status == 200
    assert [e["event_id"] for e in producer.events()] == ["ok"]
    assert producer.reasons() == ["schema_violation"]


async def test_control_characters_in_webhook_ids_are_dead_lettered(
    hooks: Client, producer: FakeProducer
) -> None:
    data = mailgun_event("opened", recipient="bob\u0000@acme.io")
    assert (await hooks.post("/v1/webhooks/mailgun", data=mailgun_payload(data))).status == 200
    data = mailgun_event("opened", **{"user-variables": {"user_id": "u\n1"}})
    assert (await hooks.post("/v1/webhooks/mailgun", data=mailgun_payload(data))).status == 200
    assert producer.events() == []
    assert producer.reasons() == ["schema_violation", "schema_violation"]


# -- 6. Server keys on GET routes ---------------------------------------------------------------


async def test_server_key_in_a_pixel_url_is_refused(client: Client, producer: FakeProducer) -> None:
    response = await client.get(
        "/v1/pixel", params={"writeKey": SERVER_KEY, "event": "Opportunity Won", "userId": "u1"}
    )
    assert response.status == 403
    assert await response.read() == GIF  # still an image
    assert "server write keys are refused on GET routes" in response.headers["X-Leadstream-Error"]
    assert producer.records == []
    # a browser key still records
    ok = await client.get("/v1/pixel", params={"writeKey": BROWSER_KEY, "anonymousId": "a1"})
    assert ok.status == 200 and len(producer.events()) == 1


async def test_server_key_in_a_redirect_url_is_refused(
    client: Client, producer: FakeProducer
) -> None:
    response = await client.get(
        "/v1/r",
        params={"u": "https://example.com/x", "writeKey": SERVER_KEY, "userId": "u1"},
        allow_redirects=False,
    )
    assert response.status == 403
    assert (await response.json())["code"] == "server_key_on_get"
    assert producer.records == []


# -- 1. CORS: configured origins only, ingest routes only ----------------------------------------


async def cors_client(
    unit_settings: Settings, producer: FakeProducer, redis: aioredis.Redis, origins: tuple[str, ...]
) -> Client:
    app = create_app(
        unit_settings, producer, options=CollectorOptions(cors_origins=origins), redis=redis
    )
    return TestClient(await start_server(app))


async def test_cors_echoes_no_origin_by_default(client: Client) -> None:
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    response = await client.options("/v1/t", headers=preflight)
    assert "Access-Control-Allow-Origin" not in response.headers
    response = await client.post(
        "/v1/t", data=orjson.dumps(track()), headers={**basic(BROWSER_KEY), **preflight}
    )
    assert response.status == 200 and "Access-Control-Allow-Origin" not in response.headers


async def test_cors_allows_configured_origins_on_ingest_routes_only(
    unit_settings: Settings, producer: FakeProducer, redis_client: aioredis.Redis
) -> None:
    async with await cors_client(
        unit_settings, producer, redis_client, ("https://www.acme.com",)
    ) as client:
        good = await client.options("/v1/t", headers={"Origin": "https://www.acme.com"})
        assert good.headers["Access-Control-Allow-Origin"] == "https://www.acme.com"
        assert good.headers["Vary"] == "Origin"
        assert "Access-Control-Allow-Credentials" not in good.headers
        other = await client.options("/v1/t", headers={"Origin": "https://evil.example"})
        assert "Access-Control-Allow-Origin" not in other.headers
        webhook = await client.options(
            "/v1/webhooks/sendgrid", headers={"Origin": "https://www.acme.com"}
        )
        assert "Access-Control-Allow-Origin" not in webhook.headers


async def test_cors_star_is_sent_as_star_without_credentials(
    unit_settings: Settings, producer: FakeProducer, redis_client: aioredis.Redis
) -> None:
    async with await cors_client(unit_settings, producer, redis_client, ("*",)) as client:
        response = await client.options("/v1/batch", headers={"Origin": "https://any.example"})
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in response.headers


# -- 11. Transport dedupe shared by collector processes, restarts and keys ------------------------


async def test_transport_dedupe_is_shared_across_processes_and_keys(
    unit_settings: Settings, redis_client: aioredis.Redis
) -> None:
    settings = unit_settings.replace(
        write_keys=f"{BROWSER_KEY}=website:browser,rotated-browser-key=website:browser,"
        f"{SERVER_KEY}=crm:server"
    )
    producer = FakeProducer(__import__("stream.topics").topics.Topics.from_settings(settings))
    body = orjson.dumps({"batch": [track(messageId="retry-1")]})

    async def post_to_new_collector(key: str) -> int:
        # a fresh app = another collector process, or the same one after a restart
        app = create_app(settings, producer, redis=redis_client)
        async with TestClient(await start_server(app)) as client:
            return (await client.post("/v1/batch", data=body, headers=basic(key))).status

    assert await post_to_new_collector(BROWSER_KEY) == 200
    assert await post_to_new_collector(BROWSER_KEY) == 200  # after a restart
    assert await post_to_new_collector("rotated-browser-key") == 200  # another key, same source
    assert [e["event_id"] for e in producer.events()] == ["retry-1"]
    # another source's ids are its own: a browser key cannot pre-empt a server key's ids
    assert await post_to_new_collector(SERVER_KEY) == 200
    assert [e["event_id"] for e in producer.events()] == ["retry-1", "retry-1"]
    ttl = await redis_client.pttl(f"{settings.redis_prefix}collector:msg:source:website:retry-1")
    assert 0 < ttl <= 24 * 3600 * 1000


async def test_transport_dedupe_fails_open_without_redis(
    unit_settings: Settings, producer: FakeProducer
) -> None:
    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    app = create_app(unit_settings, producer, redis=dead)
    async with TestClient(await start_server(app)) as client:
        body = orjson.dumps(track(messageId="m-1"))
        assert (await client.post("/v1/t", data=body, headers=basic(BROWSER_KEY))).status == 200
    await dead.aclose()
    assert [e["event_id"] for e in producer.events()] == ["m-1"]


async def test_replay_protection_fails_closed_without_redis(
    unit_settings: Settings, producer: FakeProducer, secure_options: CollectorOptions
) -> None:
    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    app = create_app(unit_settings, producer, options=secure_options, redis=dead)
    async with TestClient(await start_server(app)) as client:
        response = await client.post(
            "/v1/webhooks/mailgun", data=mailgun_payload(mailgun_event("opened"))
        )
        assert response.status == 503 and response.headers["Retry-After"]
    await dead.aclose()
    assert producer.records == []


def test_sendgrid_test_key_signs_like_sendgrid() -> None:
    """Guard for the helpers above: the private key really verifies under PUBLIC_KEY."""
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    public = load_der_public_key(base64.b64decode(PUBLIC_KEY))
    assert isinstance(public, ec.EllipticCurvePublicKey)
    signature = PRIVATE_KEY.sign(b"x", ec.ECDSA(hashes.SHA256()))
    public.verify(signature, b"x", ec.ECDSA(hashes.SHA256()))
