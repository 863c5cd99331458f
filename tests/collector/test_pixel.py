"""The pixel always answers the GIF; the redirect goes to allow-listed hosts only."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from stream.collector.pixel import GIF, allowed_redirect

from .conftest import BROWSER_KEY, FakeProducer

Client = TestClient[web.Request, web.Application]


def assert_gif(response: object, body: bytes) -> None:
    assert body == GIF and len(GIF) == 43 and GIF.startswith(b"GIF89a")
    headers = response.headers  # type: ignore[attr-defined]
    assert headers["Content-Type"] == "image/gif"
    assert "no-store" in headers["Cache-Control"] and headers["Pragma"] == "no-cache"


@pytest.mark.parametrize("path", ["/v1/pixel", "/i"])
async def test_pixel_records_a_page_view(client: Client, producer: FakeProducer, path: str) -> None:
    response = await client.get(
        path,
        params={
            "writeKey": BROWSER_KEY,
            "anonymousId": "a-1",
            "url": "https://acme.com/pricing",
            "utm": "x",
        },
        headers={"User-Agent": "Mozilla/5.0"},
    )
    assert response.status == 200
    assert_gif(response, await response.read())
    [event] = producer.events()
    assert event["type"] == "web.pricing_view"
    assert event["anonymous_id"] == "a-1"
    assert event["properties"] == {"utm": "x", "url": "https://acme.com/pricing"}
    assert event["context"]["userAgent"] == "Mozilla/5.0"


async def test_pixel_track_event_and_email(client: Client, producer: FakeProducer) -> None:
    response = await client.get(
        "/v1/pixel",
        params={
            "writeKey": BROWSER_KEY,
            "event": "Email Opened",
            "email": "Ada@Acme.io",
            "message_id": "m1",
        },
    )
    assert_gif(response, await response.read())
    [event] = producer.events()
    assert (event["type"], event["email"]) == ("email.open", "ada@acme.io")
    assert event["properties"]["message_id"] == "m1"


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"writeKey": "unknown"},
        {"writeKey": BROWSER_KEY, "anonymousId": "a", "timestamp": "2099-01-01T00:00:00Z"},
        {"writeKey": BROWSER_KEY, "type": "track", "anonymousId": "a", "event": "sales.accepted"},
        {"writeKey": BROWSER_KEY, "userId": "x" * 600},
    ],
)
async def test_pixel_always_answers_the_gif(client: Client, params: dict[str, str]) -> None:
    response = await client.get("/v1/pixel", params=params)
    assert response.status == 200
    assert_gif(response, await response.read())


async def test_pixel_bad_events_are_dead_lettered(client: Client, producer: FakeProducer) -> None:
    params = {"writeKey": BROWSER_KEY, "anonymousId": "a", "timestamp": "2099-01-01T00:00:00Z"}
    await client.get("/v1/pixel", params=params)
    assert producer.reasons() == ["schema_violation"]


async def test_pixel_answers_the_gif_when_kafka_is_down(
    client: Client, producer: FakeProducer
) -> None:
    producer.available = False
    response = await client.get("/v1/pixel", params={"writeKey": BROWSER_KEY, "anonymousId": "a"})
    assert response.status == 200
    assert_gif(response, await response.read())


async def test_pixel_sets_and_reuses_the_anonymous_cookie(
    client: Client, producer: FakeProducer
) -> None:
    response = await client.get("/v1/pixel", params={"writeKey": BROWSER_KEY})
    cookie = response.cookies["ls_aid"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    await client.get("/v1/pixel", params={"writeKey": BROWSER_KEY})  # the jar sends it back
    ids = [e["anonymous_id"] for e in producer.events()]
    assert ids == [cookie.value, cookie.value]


async def test_redirect_to_an_allowed_host(client: Client, producer: FakeProducer) -> None:
    target = "https://www.example.com/pricing?x=1"
    response = await client.get(
        "/v1/r",
        params={
            "u": target,
            "writeKey": BROWSER_KEY,
            "event": "Email Link Clicked",
            "email": "a@b.co",
        },
        allow_redirects=False,
    )
    assert response.status == 302
    assert response.headers["Location"] == target
    [event] = producer.events()
    assert event["type"] == "email.click" and event["properties"]["url"] == target


async def test_redirect_without_write_key_records_nothing(
    client: Client, producer: FakeProducer
) -> None:
    response = await client.get(
        "/v1/r", params={"u": "https://example.com/"}, allow_redirects=False
    )
    assert response.status == 302
    assert producer.records == []


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.com/",
        "https://example.com.evil.com/",
        "https://evil.com/?https://example.com",
        "https://example.com@evil.com/",
        "https://evil.com\\@example.com/",
        "//evil.com",
        "javascript:alert(1)//example.com",
        "https://notexample.com/",
        "",
        "https://example.com:99999/",
        "https://exa mple.com/",
    ],
)
async def test_redirect_refuses_other_hosts(client: Client, target: str) -> None:
    response = await client.get("/v1/r", params={"u": target}, allow_redirects=False)
    assert response.status == 400
    assert "Location" not in response.headers


def test_allowed_redirect_subdomains() -> None:
    assert allowed_redirect("http://a.b.example.com/x", ("example.com",))
    assert allowed_redirect("https://EXAMPLE.com.", ("example.com",))
    assert not allowed_redirect("https://example.com/", ())
