"""Real clients through the whole pipeline (collector → Kafka → worker → Redis).

The unmodified Segment SDK, a SendGrid event webhook signed with ECDSA P-256, and the tracking
pixel, each driven as the real thing does it, until what they sent shows in the lead's state.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import orjson
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from stream.collector.pixel import GIF
from stream.settings import Settings
from stream.store.redis import LeadStore
from stream.topics import Topics, partition_for
from tests.e2e.conftest import Pipeline
from tests.kafka_helpers import read_topic

pytestmark = pytest.mark.e2e

# Random: the collector refuses guessable keys. Added to the dev keys by `settings` below.
BROWSER_KEY = "e2e-browser-" + secrets.token_urlsafe(24)
FIT = {  # a decision maker at a target company: grade A
    "title": "CTO",
    "seniority": "c_level",
    "buying_role": "decision_maker",
    "employees": 2400,
    "industry": "software",
    "country": "DE",
    "email_type": "business",
}
T = TypeVar("T")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The session's settings plus a browser key the SDK clients below know."""
    return settings.replace(write_keys=f"{BROWSER_KEY}=website:browser,{settings.write_keys}")


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[LeadStore]:
    lead_store = LeadStore.from_url(settings.redis_url, settings.redis_prefix)
    yield lead_store
    await lead_store.close()


async def poll(read: Callable[[], Awaitable[T]], done: Callable[[T], bool], what: str) -> T:
    """Read until `done(value)`; on timeout fail with the last value seen."""
    deadline = time.monotonic() + 90.0
    value = await read()
    while not done(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last seen: {value!r}")
        await asyncio.sleep(0.2)
        value = await read()
    return value


def types(ledger: list[dict[str, Any]]) -> set[str]:
    return {entry["type"] for entry in ledger}


def entry(ledger: list[dict[str, Any]], event_id: str) -> dict[str, Any]:
    return next(e for e in ledger if e["event_id"] == event_id)


async def run_sdk(collector_url: str, calls: Callable[[Any], None]) -> None:
    """Run `calls(analytics)` with the unmodified Segment SDK in a thread, flush, shut down.

    The SDK sends from its own consumer thread; `shutdown` joins it, and the module-level
    client is reset so the next use builds a new one for the next collector.
    """
    import segment.analytics as analytics

    errors: list[Any] = []

    def use_sdk() -> None:
        analytics.write_key = BROWSER_KEY
        analytics.host = collector_url
        analytics.gzip = True
        analytics.max_retries = 3
        analytics.on_error = lambda error, items: errors.append(error)
        calls(analytics)
        analytics.flush()
        analytics.shutdown()

    try:
        await asyncio.to_thread(use_sdk)
    finally:
        analytics.default_client = None
    assert errors == []


def sendgrid_post(
    key: ec.EllipticCurvePrivateKey, events: list[dict[str, Any]]
) -> tuple[bytes, dict[str, str]]:
    """SendGrid's event webhook body and its signature headers (timestamp + raw body)."""
    payload = orjson.dumps(events)
    timestamp = str(int(time.time()))
    signature = key.sign(timestamp.encode() + payload, ec.ECDSA(hashes.SHA256()))
    return payload, {
        "Content-Type": "application/json",
        "User-Agent": "SendGrid Event API",
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
    }


async def test_segment_sdk_and_sendgrid_reach_the_lead(
    sendgrid_pipeline: Pipeline, sendgrid_key: ec.EllipticCurvePrivateKey, store: LeadStore
) -> None:
    _, _, settings = sendgrid_pipeline
    base = f"http://{settings.collector_host}:{settings.collector_port}"
    user, email = f"u-sdk-{uuid.uuid4().hex[:8]}", "ada.lovelace@bigcorp.example"

    def calls(analytics: Any) -> None:
        analytics.identify(user, {**FIT, "email": email, "name": "Ada Lovelace"})
        analytics.page(
            user,
            name="Pricing",
            properties={"path": "/pricing", "url": "https://bigcorp.example/pricing"},
        )
        analytics.track(user, "Demo Requested", {"plan": "enterprise"})

    await run_sdk(base, calls)

    ledger = await poll(
        lambda: store.ledger(user),
        lambda got: {"sales.demo_requested", "web.pricing_view"} <= types(got),
        "the SDK's track and page in the lead's ledger",
    )
    assert all(e["lead_id"] == user for e in ledger)
    for scored in ("sales.demo_requested", "web.pricing_view"):
        [found] = [e for e in ledger if e["type"] == scored]
        assert found["suppressed"] is None and found["points_at_entry"] > 0, found
    lead = await poll(
        lambda: store.get(user),
        lambda got: got is not None and got.get("stage") == "sales_ready",
        "the lead in sales_ready",
    )
    assert lead is not None
    # The identify's traits were mapped and typed (grade A), the demo request took the fast lane.
    assert (lead["grade"], lead["route"], lead["priority"]) == ("A", "ae", "P1")

    # The identify claimed the address in the collector's identity directory before it was
    # acknowledged: the webhook below is keyed by the lead, and lands behind the identify.
    now = int(time.time())
    events = [
        {"email": email.upper(), "timestamp": now, "event": "open", "sg_event_id": "sg-open-1",
         "sg_message_id": "msg-1.filter0001", "useragent": "Mozilla/5.0", "ip": "203.0.113.9"},
        {"email": email, "timestamp": now, "event": "click", "sg_event_id": "sg-click-1",
         "sg_message_id": "msg-1.filter0001", "url": "https://bigcorp.example/case-study"},
    ]  # fmt: skip
    body, headers = sendgrid_post(sendgrid_key, events)
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{base}/v1/webhooks/sendgrid", data=body, headers=headers) as resp,
    ):
        assert resp.status == 200, await resp.text()

    ledger = await poll(
        lambda: store.ledger(user),
        lambda got: {"email.open", "email.click"} <= types(got),
        "the SendGrid open and click in the lead's ledger",
    )
    assert entry(ledger, "sg-open-1")["type"] == "email.open"
    assert entry(ledger, "sg-click-1")["type"] == "email.click"
    assert all(e["lead_id"] == user for e in ledger)


async def test_pixel_visitor_joins_the_lead_on_identify(
    pipeline: Pipeline, store: LeadStore
) -> None:
    _, _, settings = pipeline
    base = f"http://{settings.collector_host}:{settings.collector_port}"
    anonymous_id = f"px-{uuid.uuid4().hex[:12]}"
    visitor, user = f"anon:{anonymous_id}", f"u-px-{uuid.uuid4().hex[:8]}"
    browser = {
        "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
        "Accept": "image/avif,image/webp,*/*",
        "Referer": "https://bigcorp.example/blog/lead-scoring",
    }
    params = {
        "writeKey": BROWSER_KEY,
        "anonymousId": anonymous_id,
        "messageId": "px-view-1",
        "url": "https://bigcorp.example/products/widget",
    }
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{base}/v1/pixel", params=params, headers=browser) as resp,
    ):
        assert resp.status == 200
        assert await resp.read() == GIF

    ledger = await poll(
        lambda: store.ledger(visitor),
        lambda got: any(e["event_id"] == "px-view-1" for e in got),
        "the pixel's page view in the visitor's ledger",
    )
    assert entry(ledger, "px-view-1")["type"] == "web.product_page_view"
    assert entry(ledger, "px-view-1")["lead_id"] == visitor
    snapshot = await store.get(visitor)
    assert snapshot is not None and snapshot["lead_id"] == visitor

    await run_sdk(base, lambda analytics: analytics.identify(user, FIT, anonymous_id=anonymous_id))

    ledger = await poll(
        lambda: store.ledger(user),
        lambda got: any(e["event_id"] == "px-view-1" for e in got),
        "the visitor's page view in the identified lead's ledger",
    )
    assert entry(ledger, "px-view-1")["type"] == "web.product_page_view"
    await poll(lambda: store.get(visitor), lambda got: got is None, "the visitor's snapshot gone")
    assert await store.ledger(visitor) == []
    # Not only the ledger moved: the visitor's scored history is part of the lead's state.
    await poll(
        lambda: store.get(user),
        lambda got: got is not None and "web.product_page_view" in got["types"],
        "the page view among the identified lead's scored types",
    )


async def test_segment_sdk_identify_then_demo_request_reaches_the_ae_queue(
    pipeline: Pipeline,
) -> None:
    """A backend's identify (with the cookie it knows) then a demo request by user id alone:
    the fast-lane handoff carries the identified grade and routes to the AE queue at once.
    The ids are chosen so that cookie and user live in different partitions: the visitor's
    history has to travel while the demo request is already there."""
    _, _, settings = pipeline
    base = f"http://{settings.collector_host}:{settings.collector_port}"
    parts = settings.partitions
    tag = uuid.uuid4().hex[:8]
    user = f"u-backend-{tag}"
    anonymous_id = next(
        a
        for n in range(100)
        if partition_for((a := f"cookie-{tag}-{n}").encode(), parts)
        != partition_for(user.encode(), parts)
    )
    # vp 25 + 201-1000 employees 20 + software 15 + US 10 + business email 5 = 75: grade A
    vp = {"title": "VP Sales", "seniority": "vp", "employees": 800, "industry": "software",
          "country": "US", "email": f"vp-{tag}@bigcorp.example"}  # fmt: skip

    def calls(analytics: Any) -> None:
        analytics.page(
            anonymous_id=anonymous_id,
            name="Pricing",
            properties={"path": "/pricing", "url": "https://bigcorp.example/pricing"},
        )
        analytics.identify(user, vp, anonymous_id=anonymous_id)
        analytics.track(user, "Demo Requested", {"plan": "enterprise"})

    await run_sdk(base, calls)
    handoff = Topics.from_settings(settings).handoff
    records = await read_topic(
        settings.kafka_bootstrap,
        handoff,
        until=lambda rs: any(
            r.key == user.encode() and orjson.loads(r.value)["reason"] == "fast_lane" for r in rs
        ),
    )
    [fast] = [
        orjson.loads(r.value)
        for r in records
        if r.key == user.encode() and orjson.loads(r.value)["reason"] == "fast_lane"
    ]
    assert fast["fit"]["grade"] == "A", fast
    assert (fast["route"]["queue"], fast["route"]["priority"]) == ("ae", "P1")
    # the visitor's pricing view joined the lead before the demo request applied
    assert "web.pricing_view" in {c["type"] for c in fast["top_contributors"]}
