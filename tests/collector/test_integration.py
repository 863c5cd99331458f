"""The collector against the real broker: the unmodified Segment SDK, a browser pixel, SendGrid."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from stream.collector.app import create_app
from stream.collector.pixel import GIF
from stream.collector.producer import EventProducer
from stream.collector.service import CollectorOptions
from stream.settings import Settings
from stream.topics import Topics
from tests.kafka_helpers import headers_of, read_topic

from .conftest import basic

pytestmark = pytest.mark.integration

BROWSER_KEY = "it-browser-key"
SERVER_KEY = "it-server-key"
PRIVATE_KEY = ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
async def collector(settings: Settings) -> AsyncIterator[Settings]:
    """A collector with a real EventProducer, served on the test's own port."""
    settings = settings.replace(write_keys=f"{BROWSER_KEY}=website:browser,{SERVER_KEY}=crm:server")
    public = PRIVATE_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    options = CollectorOptions(
        sendgrid_public_key=base64.b64encode(public).decode(), pixel_cookie="ls_aid"
    )
    producer = EventProducer.from_settings(settings)
    app = create_app(settings, producer, options=options)
    runner = web.AppRunner(app, auto_decompress=False, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", settings.collector_port).start()
    try:
        yield settings
    finally:
        await runner.cleanup()
        await producer.stop()


def values(records: list[Any]) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in records]


async def test_segment_sdk_unmodified(collector: Settings) -> None:
    import segment.analytics as analytics

    errors: list[Any] = []

    def use_sdk() -> None:
        analytics.write_key = BROWSER_KEY
        analytics.host = f"http://127.0.0.1:{collector.collector_port}"
        analytics.gzip = True
        analytics.on_error = lambda error, items: errors.append(error)
        analytics.identify(
            "user-1", {"email": "ada@acme.io", "title": "VP Sales", "employees": 250}
        )
        analytics.page(
            anonymous_id="anon-1", name="Pricing", properties={"url": "https://acme.com/pricing"}
        )
        analytics.track("user-1", "Ebook Downloaded", {"asset_id": "guide-1"})
        analytics.track(
            anonymous_id="anon-1", event="Email Opened", properties={"message_id": "m1"}
        )
        analytics.track("user-1", "Something Custom")
        analytics.flush()
        analytics.shutdown()

    try:
        await asyncio.to_thread(use_sdk)
    finally:
        analytics.default_client = None
    assert errors == []
    topics = Topics.from_settings(collector)
    web_records = await read_topic(
        collector.kafka_bootstrap, topics.events("web"), until=lambda r: len(r) >= 4
    )
    email_records = await read_topic(
        collector.kafka_bootstrap, topics.events("email"), until=lambda r: len(r) >= 1
    )
    by_type = {e["type"]: (r.key, e) for r, e in zip(web_records, values(web_records), strict=True)}
    assert set(by_type) == {"identify", "web.pricing_view", "content.ebook_download", "unmapped"}
    key, identify = by_type["identify"]
    assert key == b"user-1"
    assert identify["traits"]["seniority"] == "vp" and identify["traits"]["employees"] == 250
    assert identify["context"]["library"]["name"] == "analytics-python"
    assert by_type["web.pricing_view"][0] == b"anon-1"
    assert by_type["unmapped"][1]["properties"]["event_name"] == "Something Custom"
    [opened] = values(email_records)
    assert opened["type"] == "email.open" and email_records[0].key == b"anon-1"


async def test_pixel_like_a_browser(collector: Settings) -> None:
    url = f"http://127.0.0.1:{collector.collector_port}/v1/pixel"
    headers = {
        "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
        "Accept": "image/avif,image/webp,*/*",
        "Referer": "https://acme.com/products/widget",
    }
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, params={"writeKey": BROWSER_KEY}, headers=headers) as response,
    ):
        assert response.status == 200
        assert await response.read() == GIF
        assert response.headers["Cache-Control"].startswith("no-cache")
        cookie = response.cookies["ls_aid"].value
    topic = Topics.from_settings(collector).events("web")
    records = await read_topic(collector.kafka_bootstrap, topic, until=lambda r: len(r) >= 1)
    [event] = values(records)
    assert event["type"] == "web.product_page_view"
    assert event["anonymous_id"] == cookie and records[0].key == cookie.encode()


async def test_sendgrid_webhook_and_dead_letters(collector: Settings) -> None:
    payload = orjson.dumps(
        [
            {"email": "ada@acme.io", "timestamp": 1740830000, "event": "click", "sg_event_id": "e1",
             "sg_message_id": "m1.filter1", "url": "https://acme.com/pricing"},
            {"email": "ada@acme.io", "timestamp": 1740830000, "event": "open", "sg_event_id": "e2",
             "sg_message_id": "m1.filter1", "sg_machine_open": True},
        ]
    )  # fmt: skip
    timestamp = str(int(time.time()))
    signature = PRIVATE_KEY.sign(timestamp.encode() + payload, ec.ECDSA(hashes.SHA256()))
    headers = {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
    }
    base = f"http://127.0.0.1:{collector.collector_port}"
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/v1/webhooks/sendgrid", data=payload, headers=headers) as r:
            assert r.status == 200
        auth = basic(BROWSER_KEY)
        async with session.post(f"{base}/v1/batch", data=b'{"batch": [', headers=auth) as r:
            assert r.status == 400
        async with session.get(f"{base}/readyz") as r:
            assert r.status == 200
    topics = Topics.from_settings(collector)
    records = await read_topic(
        collector.kafka_bootstrap, topics.events("email"), until=lambda r: len(r) >= 1
    )
    [click] = values(records)
    assert (click["type"], click["event_id"], records[0].key) == (
        "email.click",
        "e1",
        b"ada@acme.io",
    )
    dead = await read_topic(
        collector.kafka_bootstrap, topics.deadletter, until=lambda r: len(r) >= 1
    )
    assert dead[0].value == b'{"batch": ['
    assert headers_of(dead[0])["reason"] == "invalid_json"
