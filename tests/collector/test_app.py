"""The collector over HTTP: write keys, statuses, limits, dead letters, hostile inputs."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from stream.collector.app import create_app, create_internal_app
from stream.collector.service import EXCERPT_BYTES
from stream.settings import Settings

from .conftest import (
    BROWSER_KEY,
    SERVER_KEY,
    FakeProducer,
    basic,
    gz,
    start_server,
    track,
    validate_canonical,
)

Client = TestClient[web.Request, web.Application]


async def post(client: Client, path: str, body: Any, key: str = BROWSER_KEY, **kw: Any) -> Any:
    return await client.post(path, data=orjson.dumps(body), headers=basic(key), **kw)


async def test_track_is_produced_keyed_on_the_identity(
    client: Client, producer: FakeProducer
) -> None:
    response = await post(client, "/v1/track", track())
    assert response.status == 200
    assert await response.json() == {"success": True}
    [record] = producer.records
    assert record.topic == "unit.leads.events.web"
    assert record.key == b"anon-1"
    assert orjson.loads(record.value)["type"] == "content.ebook_download"


@pytest.mark.parametrize(
    ("path", "message", "topic", "event_type"),
    [
        ("/v1/t", track("Email Opened"), "unit.leads.events.email", "email.open"),
        (
            "/v1/identify",
            {"userId": "u1", "traits": {"title": "CEO"}},
            "unit.leads.events.web",
            "identify",
        ),
        ("/v1/i", {"userId": "u1"}, "unit.leads.events.web", "identify"),
        (
            "/v1/page",
            {"anonymousId": "a", "properties": {"path": "/pricing"}},
            "unit.leads.events.web",
            "web.pricing_view",
        ),
        (
            "/v1/p",
            {"anonymousId": "a", "properties": {"path": "/jobs"}},
            "unit.leads.events.web",
            "web.careers_view",
        ),
        (
            "/v1/screen",
            {"anonymousId": "a", "name": "Home"},
            "unit.leads.events.web",
            "web.page_view",
        ),
        ("/v1/s", {"anonymousId": "a"}, "unit.leads.events.web", "web.page_view"),
        ("/v1/group", {"userId": "u", "groupId": "g"}, "unit.leads.events.web", "group"),
        ("/v1/g", {"userId": "u", "groupId": "g"}, "unit.leads.events.web", "group"),
        ("/v1/alias", {"userId": "u", "previousId": "a"}, "unit.leads.events.web", "alias"),
        ("/v1/a", {"userId": "u", "previousId": "a"}, "unit.leads.events.web", "alias"),
        ("/v1/t", track("Trial Started"), "unit.leads.events.web", "trial.signup"),
        ("/v1/t", track("Social Engagement"), "unit.leads.events.social", "social.engagement"),
        ("/v1/t", track("Demo Requested"), "unit.leads.events.web", "sales.demo_requested"),
    ],
)
async def test_single_call_routes(
    client: Client, producer: FakeProducer, path: str, message: Any, topic: str, event_type: str
) -> None:
    response = await post(client, path, message)
    assert response.status == 200, await response.text()
    [record] = producer.records
    assert (record.topic, orjson.loads(record.value)["type"]) == (topic, event_type)
    validate_canonical(orjson.loads(record.value))


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/b", "/v1/import"])
async def test_batch_routes(client: Client, producer: FakeProducer, path: str) -> None:
    body = {
        "batch": [track("Ebook Downloaded", messageId="1"), track("Email Opened", messageId="2")]
    }
    response = await post(client, path, body)
    assert response.status == 200
    assert [e["type"] for e in producer.events()] == ["content.ebook_download", "email.open"]


async def test_write_key_in_body_and_query(client: Client, producer: FakeProducer) -> None:
    body = {**track(messageId="b"), "writeKey": BROWSER_KEY}
    response = await client.post(
        "/v1/track", data=orjson.dumps(body), headers={"Content-Type": "text/plain"}
    )
    assert response.status == 200
    response = await client.post(
        f"/v1/track?writeKey={BROWSER_KEY}", data=orjson.dumps(track(messageId="q"))
    )
    assert response.status == 200
    assert len(producer.events()) == 2


@pytest.mark.parametrize(
    "headers",
    [
        basic("nope"),
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Bearer token"},
        {},
    ],
)
async def test_unknown_or_missing_write_key_is_401(
    client: Client, producer: FakeProducer, headers: dict[str, str]
) -> None:
    response = await client.post(
        "/v1/batch", data=orjson.dumps({"batch": [track()]}), headers=headers
    )
    assert response.status == 401
    body = await response.json()
    assert body["success"] is False and body["code"] == "unknown_source"
    assert producer.records == []


async def test_unknown_key_with_garbage_produces_nothing(
    client: Client, producer: FakeProducer
) -> None:
    response = await client.post("/v1/batch", data=b"\xff{garbage")
    assert response.status == 401
    assert producer.records == []


async def test_batch_with_good_and_bad_events(client: Client, producer: FakeProducer) -> None:
    body = {
        "batch": [
            track("Ebook Downloaded", messageId="ok-1"),
            {"type": "track", "event": "No Identity", "messageId": "bad-1"},
            track("Email Opened", messageId="bad-2", timestamp="2099-01-01T00:00:00Z"),
            track("sales.accepted", messageId="bad-3"),
            [1, 2, 3],
            track("Case Study Downloaded", messageId="ok-2", properties={"blob": "x" * 40_000}),
            track("Trial Started", messageId="ok-3"),
        ]
    }
    response = await post(client, "/v1/batch", body)
    assert response.status == 200
    assert [e["event_id"] for e in producer.events()] == ["ok-1", "ok-3"]
    assert producer.reasons() == [
        "schema_violation",
        "schema_violation",
        "forbidden_type",
        "schema_violation",
        "size_violation",
    ]
    future = producer.deadletters()[1]
    assert orjson.loads(future.value)["messageId"] == "bad-2"  # the event's own JSON
    assert future.key == b"anon-1"
    headers = dict(future.headers)
    assert headers["stage"] == b"collector"
    assert b"in the future" in headers["error"]


async def test_single_bad_event_is_400_and_dead_lettered(
    client: Client, producer: FakeProducer
) -> None:
    raw = orjson.dumps({"event": "Ebook Downloaded", "timestamp": "2025-03-01T11:00:00Z"})
    response = await client.post("/v1/track", data=raw, headers=basic(BROWSER_KEY))
    assert response.status == 400
    assert (await response.json())["code"] == "schema_violation"
    [dead] = producer.deadletters()
    assert dead.value == raw and dead.key is None


async def test_server_key_may_send_crm_outcomes(client: Client, producer: FakeProducer) -> None:
    message = track("sales.accepted", userId="u1", anonymousId=None, properties={})
    response = await post(client, "/v1/track", message, key=SERVER_KEY)
    assert response.status == 200
    [event] = producer.events()
    assert (event["type"], event["channel"], event["source"]) == ("sales.accepted", "crm", "crm")
    response = await post(client, "/v1/track", {**message, "messageId": "x"}, key=BROWSER_KEY)
    assert response.status == 400
    assert producer.reasons() == ["forbidden_type"]


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'{"batch": [',  # truncated
        b'{"batch": [{"type": "track",}]}',
        b"\xff\xfe\x00garbage",  # invalid UTF-8
        b'{"batch": [{"event": "\xc3\x28"}]}',  # invalid UTF-8 inside a string
        b"[" * 5000 + b"]" * 5000,  # deeper than orjson's 1024
        b'{"batch": [' + b'{"a":' * 200 + b"1" + b"}" * 200 + b"]}",  # deeper than ours
        b"",
    ],
)
async def test_unreadable_bodies_are_400_and_dead_lettered(
    client: Client, producer: FakeProducer, raw: bytes
) -> None:
    response = await client.post("/v1/batch", data=raw, headers=basic(BROWSER_KEY))
    assert response.status == 400
    assert (await response.json())["code"] == "invalid_json"
    [dead] = producer.deadletters()
    assert dead.value == raw[:EXCERPT_BYTES]  # the body itself when small, else its start
    assert dict(dead.headers)["reason"] == b"invalid_json"
    if len(raw) > EXCERPT_BYTES:
        assert dict(dead.headers)["body_bytes"] == str(len(raw)).encode()


@pytest.mark.parametrize("body", [[1, 2], "a string", 3, None, {"batch": "nope"}, {"nobatch": []}])
async def test_wrong_shapes_are_400_schema_violation(
    client: Client, producer: FakeProducer, body: Any
) -> None:
    response = await post(client, "/v1/batch", body)
    assert response.status == 400
    assert producer.reasons() == ["schema_violation"]


async def test_gzip_body(client: Client, producer: FakeProducer) -> None:
    raw = gz(orjson.dumps({"batch": [track()]}))
    response = await client.post(
        "/v1/batch", data=raw, headers={**basic(BROWSER_KEY), "Content-Encoding": "gzip"}
    )
    assert response.status == 200
    assert len(producer.events()) == 1


async def test_gzip_bomb_is_413(client: Client, producer: FakeProducer) -> None:
    bomb = gzip.compress(b'{"batch": [' + b" " * (200 * 1024 * 1024) + b"]}")
    response = await client.post(
        "/v1/batch", data=bomb, headers={**basic(BROWSER_KEY), "Content-Encoding": "gzip"}
    )
    assert response.status == 413
    assert (await response.json())["code"] == "size_violation"
    assert producer.records == []


async def test_broken_gzip_is_400_and_dead_lettered(client: Client, producer: FakeProducer) -> None:
    raw = gz(b'{"batch": []}')[:-8] + b"garbage!"
    response = await client.post(
        "/v1/batch", data=raw, headers={**basic(BROWSER_KEY), "Content-Encoding": "gzip"}
    )
    assert response.status == 400
    assert producer.reasons() == ["invalid_json"]


async def test_request_over_the_limit_is_413_before_reading(
    client: Client, producer: FakeProducer
) -> None:
    big = b"{" + b" " * (600 * 1024) + b"}"
    response = await client.post("/v1/batch", data=big, headers=basic(BROWSER_KEY))
    assert response.status == 413
    assert producer.records == []


async def test_chunked_request_over_the_limit_is_413(
    client: Client, producer: FakeProducer
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b" " * 10_000

    response = await client.post("/v1/batch", data=chunks(), headers=basic(BROWSER_KEY))
    assert response.status == 413


async def test_single_event_over_32k_is_413(client: Client, producer: FakeProducer) -> None:
    response = await post(client, "/v1/track", track(properties={"x": "y" * 33_000}))
    assert response.status == 413
    assert producer.records == []


async def test_batch_over_the_event_count_is_400(client: Client, producer: FakeProducer) -> None:
    body = {"batch": [{"type": "track"}] * 2501}
    response = await post(client, "/v1/batch", body)
    assert response.status == 400
    assert (await response.json())["code"] == "size_violation"
    assert producer.records == []
    response = await post(
        client, "/v1/batch", {"batch": [track(messageId=str(i)) for i in range(2500)]}
    )
    assert response.status == 200
    assert len(producer.events()) == 2500


async def test_kafka_down_is_503_then_the_retry_succeeds(
    client: Client, producer: FakeProducer
) -> None:
    producer.available = False
    body = {"batch": [track(messageId="r-1"), {"type": "track"}]}
    response = await post(client, "/v1/batch", body)
    assert response.status == 503
    assert response.headers["Retry-After"].isdigit()
    assert producer.records == []
    response = await client.post("/v1/batch", data=b"{", headers=basic(BROWSER_KEY))
    assert response.status == 503  # the dead letter could not be written either
    producer.available = True
    response = await post(client, "/v1/batch", body)
    assert response.status == 200
    assert [e["event_id"] for e in producer.events()] == ["r-1"]  # not remembered before the ack
    assert producer.reasons() == ["schema_violation"]


async def test_retried_batch_is_not_produced_twice(client: Client, producer: FakeProducer) -> None:
    body = {"batch": [track(messageId="d-1"), track(messageId="d-1"), track(messageId="d-2")]}
    assert (await post(client, "/v1/batch", body)).status == 200
    assert (await post(client, "/v1/batch", body)).status == 200
    assert [e["event_id"] for e in producer.events()] == ["d-1", "d-2"]
    # another write key has its own id space
    assert (await post(client, "/v1/batch", body, key=SERVER_KEY)).status == 200
    assert len(producer.events()) == 4


async def test_events_without_message_id_are_never_deduped(
    client: Client, producer: FakeProducer
) -> None:
    message = track()
    del message["messageId"]
    for _ in range(2):
        assert (await post(client, "/v1/track", message)).status == 200
    ids = {e["event_id"] for e in producer.events()}
    assert len(ids) == 2


async def test_rate_limit_is_429_with_retry_after(
    producer: FakeProducer, unit_settings: Settings, redis_client: aioredis.Redis
) -> None:
    settings = unit_settings.replace(rate_limit_per_second=5.0)
    app = create_app(settings, producer, redis=redis_client)
    async with TestClient(await start_server(app)) as client:
        body = {"batch": [track(messageId=str(i)) for i in range(20)]}
        assert (await post(client, "/v1/batch", body)).status == 200
        response = await post(client, "/v1/batch", body)
        assert response.status == 429
        assert int(response.headers["Retry-After"]) >= 1
        assert (await response.json())["code"] == "rate_limited"
        # the other key is not limited
        assert (await post(client, "/v1/batch", body, key=SERVER_KEY)).status == 200


async def test_health_ready_and_metrics(
    client: Client, producer: FakeProducer, unit_settings: Settings
) -> None:
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    producer.available = False
    assert (await client.get("/readyz")).status == 503
    await post(client, "/v1/b", {"batch": []})
    await client.get("/v1/this/is/random/user-123")
    assert (await client.get("/metrics")).status == 404  # internal listener only
    async with TestClient(TestServer(create_internal_app(unit_settings))) as internal:
        metrics = await (await internal.get("/metrics")).text()
    assert 'leadstream_collector_requests_total{route="/v1/b",status="503"}' in metrics
    assert 'route="unmatched",status="404"' in metrics
    assert "user-123" not in metrics


async def test_app_keeps_serving_after_hostile_inputs(
    client: Client, producer: FakeProducer
) -> None:
    hostile = [
        b"[" * 100_000,
        b'{"batch": [' + b"{}," * 2000 + b"{}]}",
        b"\x00" * 1000,
        orjson.dumps(
            {"batch": [{"type": "track", "event": "x", "anonymousId": "a", "timestamp": 1e300}]}
        ),
        orjson.dumps(
            {"batch": [{"type": "track", "event": "x", "anonymousId": "a", "timestamp": -1}]}
        ),
        orjson.dumps(
            {"batch": [{"type": "page", "anonymousId": "a", "properties": {"url": "http://[::1"}}]}
        ),
    ]
    for raw in hostile:
        response = await client.post("/v1/batch", data=raw, headers=basic(BROWSER_KEY))
        assert response.status < 500, raw[:50]
    assert (await post(client, "/v1/track", track(messageId="after"))).status == 200
    assert producer.events()[-1]["event_id"] == "after"


async def test_aiohttp_auto_decompress_on_still_works(
    app: web.Application, producer: FakeProducer
) -> None:
    async with TestClient(await start_server(app, auto_decompress=True)) as client:
        raw = gz(orjson.dumps({"batch": [track()]}))
        headers = {**basic(BROWSER_KEY), "Content-Encoding": "gzip"}
        assert (await client.post("/v1/batch", data=raw, headers=headers)).status == 200
        bomb = gzip.compress(b" " * (50 * 1024 * 1024))
        assert (await client.post("/v1/batch", data=bomb, headers=headers)).status == 413
    assert len(producer.events()) == 1


async def test_broken_gzip_with_auto_decompress_is_400(app: web.Application) -> None:
    async with TestClient(await start_server(app, auto_decompress=True)) as client:
        raw = gz(b'{"batch": []}')[:-8] + b"garbage!"
        headers = {**basic(BROWSER_KEY), "Content-Encoding": "gzip"}
        assert (await client.post("/v1/batch", data=raw, headers=headers)).status == 400
