"""Hostile requests of issue 28 against the collector, each with the refusal it must get: a
Mailgun token re-split across the timestamp, non-canonical provider timestamps, invisible and
direction-reversing characters in ids, a dead-letter flood with a public browser key."""

from __future__ import annotations

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

from stream.collector.app import COLLECTOR, create_app
from stream.collector.limits import RateLimiter
from stream.collector.service import EXCERPT_BYTES, CollectorOptions
from stream.collector.webhooks import generic
from stream.settings import Settings

from .conftest import BROWSER_KEY, FakeProducer, basic, start_server, track
from .test_webhooks import (
    GENERIC_SECRET,
    MAILGUN_KEY,
    PUBLIC_KEY,
    mailgun_event,
    mailgun_payload,
    sendgrid_events,
    sendgrid_sign,
)

Client = TestClient[web.Request, web.Application]


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


def mailgun_body(event_data: dict[str, Any], timestamp: str, token: str, digest: str) -> bytes:
    signature = {"timestamp": timestamp, "token": token, "signature": digest}
    return orjson.dumps({"signature": signature, "event-data": event_data})


def mailgun_digest(signed: str) -> str:
    return hmac.new(MAILGUN_KEY.encode(), signed.encode(), hashlib.sha256).hexdigest()


# -- 1. Mailgun: a captured token cannot be re-split across the timestamp ----------------------


async def test_mailgun_token_moved_into_the_timestamp_is_refused(
    hooks: Client, producer: FakeProducer
) -> None:
    """The finding: `float("<ts>e0")` is `<ts>`, and the signed text `<ts>` + `e0…` is the same
    when `e0` moves from the token into the timestamp: a forged complaint was accepted (200)."""
    ts = str(int(time.time()))
    token = "e0" + uuid.uuid4().hex + uuid.uuid4().hex[:16]
    digest = mailgun_digest(ts + token)
    captured = mailgun_body(mailgun_event("opened"), ts, token, digest)
    assert (await hooks.post("/v1/webhooks/mailgun", data=captured)).status == 200
    complaint = mailgun_event("complained", id="mg-forged", recipient="victim@acme.io")
    forged = mailgun_body(complaint, ts + "e0", token[2:], digest)
    response = await hooks.post("/v1/webhooks/mailgun", data=forged)
    assert response.status == 401
    assert (await response.json())["code"] == "signature_invalid"
    assert [e["type"] for e in producer.events()] == ["email.open"]


@pytest.mark.parametrize(
    "shape",
    [
        "{ts}e0",
        "{ts}.0",
        "{ts}.4",
        "+{ts}",
        "0{ts}",
        " {ts}",
        "{ts}\n",
        "1_{rest}",
        "{arabic}",
    ],
)
async def test_mailgun_timestamp_must_be_plain_digits_even_when_signed(
    hooks: Client, producer: FakeProducer, shape: str
) -> None:
    """Strict parsing, not only a fixed key: a timestamp in any other spelling is refused even
    when the signature over that spelling is right."""
    ts = str(int(time.time()))
    arabic = ts.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    timestamp = shape.format(ts=ts, rest=ts[1:], arabic=arabic)
    token = uuid.uuid4().hex
    body = mailgun_body(
        mailgun_event("opened"), timestamp, token, mailgun_digest(timestamp + token)
    )
    response = await hooks.post("/v1/webhooks/mailgun", data=body)
    assert response.status == 401, timestamp
    assert "not a unix time" in (await response.json())["message"]
    assert producer.events() == []


async def test_mailgun_integer_timestamp_is_still_accepted(
    hooks: Client, producer: FakeProducer
) -> None:
    ts = int(time.time())
    token = uuid.uuid4().hex
    body = orjson.dumps(
        {
            "signature": {
                "timestamp": ts,
                "token": token,
                "signature": mailgun_digest(f"{ts}{token}"),
            },
            "event-data": mailgun_event("opened"),
        }
    )
    assert (await hooks.post("/v1/webhooks/mailgun", data=body)).status == 200
    assert (await hooks.post("/v1/webhooks/mailgun", data=body)).status == 401  # once only
    assert len(producer.events()) == 1


async def test_sendgrid_timestamp_with_a_leading_zero_is_refused(
    hooks: Client, producer: FakeProducer
) -> None:
    payload = orjson.dumps(sendgrid_events()[:3])
    stamp = "0" + str(int(time.time()))
    response = await hooks.post(
        "/v1/webhooks/sendgrid", data=payload, headers=sendgrid_sign(payload, stamp)
    )
    assert response.status == 401
    assert "not a unix time" in (await response.json())["message"]
    assert producer.events() == []


async def test_generic_timestamp_is_verified_as_sent(hooks: Client, producer: FakeProducer) -> None:
    """The signature covers the header's exact text: `0<ts>` is not `<ts>`."""
    payload = orjson.dumps({"id": "li-1", "network": "x", "email": "eve@acme.io"})
    at = int(time.time())
    headers = {
        generic.ID_HEADER: "msg-zero",
        generic.TIMESTAMP_HEADER: f"0{at}",
        generic.SIGNATURE_HEADER: generic.sign(GENERIC_SECRET, "msg-zero", at, payload),
    }
    response = await hooks.post("/v1/webhooks/generic", data=payload, headers=headers)
    assert response.status == 401
    assert producer.events() == []
    headers[generic.TIMESTAMP_HEADER] = str(at)  # as signed: accepted
    assert (await hooks.post("/v1/webhooks/generic", data=payload, headers=headers)).status == 200


# -- 7a. Invisible and direction-reversing characters in ids -------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        track(anonymousId="anon-1\u200b"),  # zero-width space: looks like anon-1
        track(userId="\u202emoc.rekcah@ecila"),  # right-to-left override
        track(userId="u-1\u2066x\u2069"),  # isolates
        track(messageId="m-\ufeff1"),  # byte-order mark
        track(event="Demo\u200d Requested"),  # zero-width joiner
        track(context={"traits": {"email": "ada\u200c@acme.io"}}),
        track(properties={"asset_id": "e-1", "key\u200e": 1}),  # left-to-right mark in a key
        track(context={"groupId": "acme\u00ad"}),  # soft hyphen
    ],
)
async def test_invisible_characters_are_400_and_dead_lettered(
    client: Client, producer: FakeProducer, message: dict[str, Any]
) -> None:
    response = await client.post(
        "/v1/track", data=orjson.dumps(message), headers=basic(BROWSER_KEY)
    )
    assert response.status == 400
    body = await response.json()
    assert body["code"] == "schema_violation"
    assert "invisible or direction-changing characters" in body["message"] or (
        "invisible format characters" in body["message"]
    )
    assert producer.events() == []
    [letter] = producer.deadletters()
    assert dict(letter.headers)["reason"] == b"schema_violation"
    assert b"invisible" in dict(letter.headers)["error"]


async def test_invisible_characters_in_a_batch_dead_letter_that_event_only(
    client: Client, producer: FakeProducer
) -> None:
    body = {"batch": [track(messageId="ok"), track(userId="u\u202e1", messageId="bidi")]}
    response = await client.post("/v1/batch", data=orjson.dumps(body), headers=basic(BROWSER_KEY))
    assert response.status == 200
    assert [e["event_id"] for e in producer.events()] == ["ok"]
    assert producer.reasons() == ["schema_violation"]


async def test_invisible_characters_in_webhook_ids_are_dead_lettered(
    hooks: Client, producer: FakeProducer
) -> None:
    data = mailgun_event("opened", **{"user-variables": {"user_id": "u-77\u200b"}})
    assert (await hooks.post("/v1/webhooks/mailgun", data=mailgun_payload(data))).status == 200
    data = mailgun_event("opened", recipient="\u202ebob@acme.io")
    assert (await hooks.post("/v1/webhooks/mailgun", data=mailgun_payload(data))).status == 200
    assert producer.events() == []
    assert producer.reasons() == ["schema_violation", "schema_violation"]


# -- 2. The dead-letter topic cannot be filled with a public browser key -------------------------


@pytest.fixture
async def limited(
    unit_settings: Settings, producer: FakeProducer, redis_client: aioredis.Redis
) -> AsyncIterator[Client]:
    """The app with a 5 events/s limit per key on a clock that does not move: the bucket holds
    5 events and never refills, so what passes does not depend on how fast the test runs."""
    settings = unit_settings.replace(rate_limit_per_second=5.0)
    app = create_app(settings, producer, redis=redis_client)
    app[COLLECTOR].limiter = RateLimiter(5.0, clock=lambda: 0.0)
    async with TestClient(await start_server(app)) as client:
        yield client


BROKEN = b'{"batch": [' + b"x" * 490_000  # 490 KB that is not JSON


async def test_broken_bodies_are_charged_and_store_an_excerpt(
    limited: Client, producer: FakeProducer
) -> None:
    """The finding: 200 requests of 490 KB of broken JSON with a browser key stored 98 MB of
    dead letters, and 100 of 100 passed a 5/s limit. Now each is charged like an event and
    leaves a dead letter of at most EXCERPT_BYTES that says what was refused and why."""
    statuses = []
    for _ in range(40):
        response = await limited.post("/v1/batch", data=BROKEN, headers=basic(BROWSER_KEY))
        statuses.append(response.status)
    assert statuses.count(400) == 5 and statuses.count(429) == 35
    letters = producer.deadletters()
    assert len(letters) == 5
    assert sum(len(letter.value) for letter in letters) == 5 * EXCERPT_BYTES
    meta = {k: v.decode() for k, v in letters[0].headers}
    assert meta["reason"] == "invalid_json" and meta["stage"] == "collector"
    assert meta["body_bytes"] == str(len(BROKEN)) and meta["excerpt"] == "true"
    assert meta["source"] == "website" and "not valid JSON" in meta["error"]
    assert letters[0].value == BROKEN[:EXCERPT_BYTES]
    # the key's budget is spent: a valid event is refused too, until it refills
    valid = await limited.post("/v1/t", data=orjson.dumps(track()), headers=basic(BROWSER_KEY))
    assert valid.status == 429


@pytest.mark.parametrize(
    ("body", "headers", "reason"),
    [
        (orjson.dumps("x" * 400_000), {}, "schema_violation"),  # JSON, but not an object
        (orjson.dumps({"batch": "x" * 400_000}), {}, "schema_violation"),
        (b"\x1f\x8b" + b"x" * 400_000, {"Content-Encoding": "gzip"}, "invalid_json"),
    ],
)
async def test_unreadable_bodies_store_an_excerpt(
    limited: Client, producer: FakeProducer, body: bytes, headers: dict[str, str], reason: str
) -> None:
    response = await limited.post("/v1/batch", data=body, headers={**basic(BROWSER_KEY), **headers})
    assert response.status == 400
    [letter] = producer.deadletters()
    assert letter.value == body[:EXCERPT_BYTES]
    meta = {k: v.decode() for k, v in letter.headers}
    assert (meta["reason"], meta["body_bytes"]) == (reason, str(len(body)))


async def test_an_oversized_event_in_a_batch_stores_an_excerpt(
    limited: Client, producer: FakeProducer
) -> None:
    big = track(messageId="big", properties={"pad": "x" * 400_000})
    body = orjson.dumps({"batch": [track(messageId="ok"), big]})
    response = await limited.post("/v1/batch", data=body, headers=basic(BROWSER_KEY))
    assert response.status == 200
    assert [e["event_id"] for e in producer.events()] == ["ok"]
    [letter] = producer.deadletters()
    meta = {k: v.decode() for k, v in letter.headers}
    assert meta["reason"] == "size_violation" and meta["excerpt"] == "true"
    assert int(meta["body_bytes"]) > 400_000 and len(letter.value) == EXCERPT_BYTES
    assert letter.key == b"anon-1"  # still says whose it was


async def test_small_rejected_events_keep_their_bytes(
    limited: Client, producer: FakeProducer
) -> None:
    """An event within the size limit is dead-lettered whole, as before: it can be re-posted."""
    bad = track(messageId="bad", userId={"not": "an id"})
    body = orjson.dumps({"batch": [bad]})
    assert (await limited.post("/v1/batch", data=body, headers=basic(BROWSER_KEY))).status == 200
    [letter] = producer.deadletters()
    assert letter.value == orjson.dumps(bad)
    assert "excerpt" not in dict(letter.headers)
