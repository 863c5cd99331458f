"""The worker as a real process on the real broker: events in, handoffs and Redis out."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import pytest
import redis.asyncio as aioredis

from stream.demo import Processes
from stream.settings import Settings
from stream.store.redis import LeadStore
from stream.topics import Topics
from tests.kafka_helpers import headers_of, produce, produce_events, read_topic

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
HANDOFF_SCHEMA = jsonschema_rs.validator_for(
    orjson.loads((ROOT / "schemas/handoff-data.schema.json").read_bytes())
)

VP = {
    "seniority": "vp",
    "buying_role": "decision_maker",
    "employees": 800,
    "industry": "software",
    "country": "US",
    "email_type": "business",
}


def event(event_id: str, type_: str, at: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": type_,
        "channel": fields.pop("channel", "web"),
        "occurred_at": at,
        "received_at": at,
        "anonymous_id": None,
        "user_id": None,
        "email": None,
        "account_id": None,
        "source": "test",
        "properties": {},
        "traits": {},
        "context": {},
        **fields,
    }


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(settings, tmp_path / "logs")
    procs.start("worker")
    yield procs
    procs.stop()


async def wait_snapshot(store: LeadStore, lead_id: str, stage: str) -> dict[str, Any]:
    for _ in range(240):
        snap = await store.get(lead_id)
        if snap is not None and snap["stage"] == stage:
            return snap
        await asyncio.sleep(0.25)
    raise AssertionError(f"{lead_id} never reached {stage} in Redis (last: {snap})")


async def wait_ledger(
    store: LeadStore, lead_id: str, has: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """A snapshot can be in Redis before its ledger entries: on a Redis without snapshot marks
    (this test's fresh prefix) the worker writes back every lead its stores hold, and such a
    write carries no ledger; the entries follow with the next flush."""
    for _ in range(120):
        ledger = await store.ledger(lead_id)
        if has(ledger):
            return ledger
        await asyncio.sleep(0.25)
    raise AssertionError(f"{lead_id}'s ledger is not complete (last: {ledger})")


async def test_hand_raiser_is_handed_off_with_a_cloudevent(
    settings: Settings, worker: Processes, redis_client: aioredis.Redis
) -> None:
    topics = Topics.from_settings(settings)
    await produce_events(
        settings.kafka_bootstrap,
        topics.events("web"),
        [
            event("e1", "identify", "2026-03-02T09:00:00Z", user_id="u-vp", traits=VP),
            event("e2", "meeting.requested", "2026-03-02T09:05:00Z", user_id="u-vp"),
        ],
    )
    records = await read_topic(
        settings.kafka_bootstrap,
        topics.handoff,
        until=lambda rs: any(headers_of(r).get("ce_tostage") == "sales_ready" for r in rs),
    )
    handoff = next(r for r in records if headers_of(r)["ce_tostage"] == "sales_ready")
    headers = headers_of(handoff)
    assert handoff.key == b"u-vp"
    assert headers["ce_type"] == "leadstream.lead.stage_changed.v1"
    assert headers["ce_subject"] == "lead/u-vp"
    assert headers["ce_priority"] == "P1"
    assert headers["ce_time"].startswith("2026-03-02T09:05:00")
    data = orjson.loads(handoff.value)
    HANDOFF_SCHEMA.validate(data)
    assert data["reason"] == "fast_lane"
    assert data["route"]["queue"] == "ae"
    assert data["trigger_event_ids"] == ["e2"]

    store = LeadStore(redis_client, settings.redis_prefix)
    snap = await wait_snapshot(store, "u-vp", "sales_ready")
    assert snap["grade"] == "A"
    demo = "sales.demo_requested"
    await wait_ledger(store, "u-vp", lambda entries: any(e["type"] == demo for e in entries))


async def test_visitor_history_joins_the_lead_on_identify(
    settings: Settings, worker: Processes, redis_client: aioredis.Redis
) -> None:
    topics = Topics.from_settings(settings)
    await produce_events(
        settings.kafka_bootstrap,
        topics.events("web"),
        [
            event("v1", "web.product_page_view", "2026-03-02T09:00:00Z", anonymous_id="cookie-1"),
            event("v2", "web.product_page_view", "2026-03-03T09:00:00Z", anonymous_id="cookie-1"),
            event(
                "v3",
                "identify",
                "2026-03-03T10:00:00Z",
                anonymous_id="cookie-1",
                user_id="u-joined",
                traits=VP,
            ),
        ],
    )
    store = LeadStore(redis_client, settings.redis_prefix)
    snap = await wait_snapshot(store, "u-joined", "lead")
    # two product views (4 each) and the research streak (5) they triggered, barely decayed
    assert snap["types"]["web.product_page_view"] > 7.5
    assert snap["types"].get("journey.research_streak", 0) > 4.5
    for _ in range(20):  # the visitor's own snapshot goes once its history joined the lead
        if await store.get("anon:cookie-1") is None:
            break
        await asyncio.sleep(0.25)
    assert await store.get("anon:cookie-1") is None
    await wait_ledger(store, "u-joined", lambda es: {e["event_id"] for e in es} >= {"v1", "v2"})


async def test_garbage_is_dead_lettered_and_processing_goes_on(
    settings: Settings, worker: Processes, redis_client: aioredis.Redis
) -> None:
    topics = Topics.from_settings(settings)
    await produce(
        settings.kafka_bootstrap,
        topics.events("web"),
        [
            (b"k1", b"{not json"),
            (b"k2", b"[1, 2, 3]"),
            (b"k3", orjson.dumps({"event_id": "x", "type": "web.page_view"})),  # no identity
        ],
    )
    await produce_events(
        settings.kafka_bootstrap,
        topics.events("web"),
        [
            event("ok1", "web.page_view", "2026-03-02T09:00:00Z", user_id="u-after"),
        ],
    )
    dead = await read_topic(
        settings.kafka_bootstrap, topics.deadletter, until=lambda rs: len(rs) >= 3
    )
    reasons = sorted(headers_of(r)["reason"] for r in dead)
    assert reasons == ["invalid_json", "schema_violation", "schema_violation"]
    assert {r.value for r in dead} >= {b"{not json", b"[1, 2, 3]"}  # bytes unchanged
    assert all(headers_of(r)["original_topic"] == topics.events("web") for r in dead)
    await wait_snapshot(LeadStore(redis_client, settings.redis_prefix), "u-after", "lead")


async def test_account_rollup_reaches_mqa(
    settings: Settings, worker: Processes, redis_client: aioredis.Redis
) -> None:
    topics = Topics.from_settings(settings)
    company = {"employees": 800, "industry": "software", "country": "US"}
    events = []
    for n in range(3):
        user, day = f"acme-{n}", f"2026-03-0{n + 2}"
        events += [
            event(
                f"a{n}i",
                "identify",
                f"{day}T09:00:00Z",
                user_id=user,
                account_id="acme",
                traits={**company, "seniority": "manager"},
            ),
            event(
                f"a{n}t",
                "trial.signup",
                f"{day}T09:10:00Z",
                user_id=user,
                account_id="acme",
                channel="product",
            ),
            event(
                f"a{n}w",
                "webinar.attended",
                f"{day}T09:20:00Z",
                user_id=user,
                account_id="acme",
                properties={"webinar_id": "w1"},
            ),
        ]
    await produce_events(settings.kafka_bootstrap, topics.events("web"), events)
    records = await read_topic(
        settings.kafka_bootstrap, topics.account_events, until=lambda rs: len(rs) >= 1
    )
    data = orjson.loads(records[0].value)
    assert data["account_id"] == "acme" and data["mqa"] is True
    assert headers_of(records[0])["ce_type"] == "leadstream.account.mqa_changed.v1"
    store = LeadStore(redis_client, settings.redis_prefix)
    for _ in range(40):
        account = await store.account("acme")
        if account is not None and len(account["contacts"]) == 3:
            break
        await asyncio.sleep(0.25)
    assert account is not None and account["mqa"] is True
    assert account["fit"] == 20 + 15 + 10  # employees, primary industry, target country
