"""stream/simulate: seeded journeys in Segment's format, and the sender against a local server."""

from __future__ import annotations

import asyncio
import base64
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from stream.errors import SettingsError
from stream.simulate import (
    DEFAULT_WEIGHTS,
    PERSONAS,
    SPAN_DAYS,
    Journey,
    build_journeys,
    default_start,
    ordered_messages,
    parse_weights,
    send,
)
from stream.simulate.sender import batches

START = datetime(2025, 3, 3, tzinfo=UTC)
FAST_LANE = {"Demo Requested", "Contact Sales Form Submitted"}
AWARENESS_TRACKS = {
    "Email Opened",
    "Email Link Clicked",
    "Social Engagement",
    "Ebook Downloaded",
    "Unsubscribed",
}


@pytest.fixture(scope="module")
def journeys() -> list[Journey]:
    return build_journeys(600, seed=42, start=START)


def of(journeys: list[Journey], persona: str) -> list[Journey]:
    found = [j for j in journeys if j.persona == persona]
    assert found, persona
    return found


def tracks(journey: Journey) -> list[str]:
    return [m.body["event"] for m in journey.messages if m.body["type"] == "track"]


def paths(journey: Journey) -> list[str]:
    return [m.body["properties"]["path"] for m in journey.messages if m.body["type"] == "page"]


# --- build_journeys ---------------------------------------------------------------------------


def test_same_seed_same_messages(journeys: list[Journey]) -> None:
    again = build_journeys(600, seed=42, start=START)
    assert [m.body for j in again for m in j.messages] == [
        m.body for j in journeys for m in j.messages
    ]
    other = build_journeys(600, seed=43, start=START)
    ids = {m.body["messageId"] for j in journeys for m in j.messages}
    assert ids.isdisjoint(m.body["messageId"] for j in other for m in j.messages)


def test_message_ids_depend_on_seed_not_start(journeys: list[Journey]) -> None:
    """A rerun of a seed later in time resends the same ids: the pipeline dedupes them."""
    later = build_journeys(600, seed=42, start=START + timedelta(days=9))
    assert [m.body["messageId"] for j in later for m in j.messages] == [
        m.body["messageId"] for j in journeys for m in j.messages
    ]


def test_lead_journey_does_not_depend_on_lead_count() -> None:
    small, large = build_journeys(20, 5, START), build_journeys(40, 5, START)
    same = [(a, b) for a, b in zip(small, large, strict=False) if a.persona == b.persona]
    assert same
    assert all(a.messages == b.messages for a, b in same)


def test_every_message_has_segment_shape(journeys: list[Journey]) -> None:
    ids = Counter(m.body["messageId"] for j in journeys for m in j.messages)
    assert max(ids.values()) == 1, "messageIds must be unique"
    for journey in journeys:
        for m in journey.messages:
            body = m.body
            assert body["type"] in {"track", "page", "identify"}
            assert isinstance(body["messageId"], str) and body["messageId"]
            assert body.get("anonymousId") or body.get("userId")
            stamp = datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
            assert stamp == m.at and body["timestamp"].endswith("Z")
            assert body["context"]["library"]["name"] == "leadstream-simulate"
            assert isinstance(body.get("properties", body.get("traits")), dict)
            if body["type"] == "track":
                assert isinstance(body["event"], str) and body["event"]
            if body["type"] == "identify":
                assert body["userId"] == journey.user_id and body["anonymousId"]
                assert body["traits"]
            if m.source == "browser":
                assert body["anonymousId"] == journey.anonymous_id
                page = body["context"]["page"]
                assert page["url"].endswith(page["path"]) and page["path"].startswith("/")
            if body["type"] == "page":
                assert body["properties"]["path"] == body["context"]["page"]["path"]
            orjson.dumps(body)  # JSON-serialisable as is


def test_the_collector_accepts_every_message(journeys: list[Journey]) -> None:
    """Contract: the collector's own Segment parser maps every message to a model type."""
    from stream.collector import segment
    from stream.collector.mapping import load_mapping

    mapping = load_mapping()
    sources = {
        "browser": segment.Source("website", "browser", "website"),
        "server": segment.Source("crm", "server", "crm"),
    }
    types: Counter[str] = Counter()
    for batch in batches(ordered_messages(journeys), 100):
        body = orjson.loads(orjson.dumps({"batch": [m.body for m in batch]}))
        parsed = segment.split_body("batch", body, 2500)
        received = datetime(2025, 6, 1, tzinfo=UTC)
        for outcome in segment.process(
            parsed, "batch", sources[batch[0].source], mapping, received, 32 * 1024
        ):
            assert isinstance(outcome, segment.Accepted), outcome
            types[outcome.event["type"]] += 1
    assert types["unmapped"] == 0
    for wanted in (
        "web.pricing_view",
        "web.product_page_view",
        "web.careers_view",
        "sales.demo_requested",
        "form.contact_sales",
        "sales.accepted",
        "identify",
    ):
        assert types[wanted], wanted


def test_identify_traits_use_model_names(journeys: list[Journey]) -> None:
    allowed = {
        "email", "name", "title", "company", "seniority", "buying_role", "employees",
        "industry", "country", "email_type", "tech_fit", "budget_usd", "budget_confirmed",
        "need", "timeline_months",
    }  # fmt: skip
    seniorities = {"c_level", "vp", "director", "manager", "individual_contributor", "student"}
    for journey in journeys:
        for m in journey.messages:
            if m.body["type"] == "identify":
                assert set(m.body["traits"]) <= allowed
        assert journey.traits["seniority"] in seniorities | {"intern", "founder", "owner"}
        assert journey.traits["email_type"] in {"business", "free", "disposable"}


def test_anonymous_until_identify_then_both_ids(journeys: list[Journey]) -> None:
    for journey in journeys:
        browser = [m.body for m in journey.messages if m.source == "browser"]
        first = next((i for i, b in enumerate(browser) if b["type"] == "identify"), len(browser))
        assert all("userId" not in b for b in browser[:first])
        assert all(b["userId"] == journey.user_id for b in browser[first:])
    firsts = [j.messages[0].body for j in journeys]
    assert all(b["type"] == "page" and "userId" not in b for b in firsts)


def test_personas_in_expected_proportions(journeys: list[Journey]) -> None:
    counts = Counter(j.persona for j in journeys)
    total = sum(DEFAULT_WEIGHTS.values())
    for persona in PERSONAS:
        assert abs(counts[persona] - 600 * DEFAULT_WEIGHTS[persona] / total) <= 1, persona


def test_custom_weights() -> None:
    weights = parse_weights("student=0,job_seeker=0,hand_raiser=2")
    counts = Counter(j.persona for j in build_journeys(100, 1, START, weights=weights))
    assert counts["student"] == counts["job_seeker"] == 0
    assert counts["hand_raiser"] == max(counts.values())
    assert sum(counts.values()) == 100


@pytest.mark.parametrize("text", ["cfo=1", "student", "student=-1", "student=x"])
def test_bad_weights_name_the_fix(text: str) -> None:
    with pytest.raises(SettingsError, match="want"):
        parse_weights(text)


def test_students_and_non_buyers_never_ask_for_sales(journeys: list[Journey]) -> None:
    for persona in ("student", "job_seeker", "tyre_kicker"):
        for journey in of(journeys, persona):
            assert not FAST_LANE & set(tracks(journey)), journey.user_id
            assert all(m.source == "browser" for m in journey.messages)


def test_students_have_non_buyer_profiles(journeys: list[Journey]) -> None:
    for journey in of(journeys, "student"):
        assert journey.traits["seniority"] in {"student", "intern"}
        assert journey.traits["email_type"] == "free"


def test_hand_raisers_ask_for_sales(journeys: list[Journey]) -> None:
    for journey in of(journeys, "hand_raiser"):
        asks = [e for e in tracks(journey) if e in FAST_LANE]
        assert len(asks) == 1, journey.events()
        events = journey.events()
        assert events.index("identify") < events.index(asks[0])


def test_job_seekers_view_careers(journeys: list[Journey]) -> None:
    for journey in of(journeys, "job_seeker"):
        assert "/careers" in paths(journey)
        assert any(p.startswith("/jobs/") for p in paths(journey))


def test_tyre_kickers_stay_in_awareness(journeys: list[Journey]) -> None:
    for journey in of(journeys, "tyre_kicker"):
        assert all(p == "/" or p.startswith("/blog/") for p in paths(journey))
        assert set(tracks(journey)) <= AWARENESS_TRACKS
        assert len(journey.messages) >= 10


def test_decision_makers_research_then_mid_funnel_then_pricing(journeys: list[Journey]) -> None:
    full = 0
    for journey in of(journeys, "decision_maker"):
        assert journey.traits["seniority"] in {"c_level", "vp"}
        assert 201 <= journey.traits["employees"] <= 5000
        product_days = {
            m.at.date()
            for m in journey.messages
            if m.body["type"] == "page"
            and m.body["properties"]["path"].startswith(("/product/", "/features/", "/platform"))
        }
        assert len(product_days) >= 2, journey.events()
        events = journey.events()
        if "/pricing" in events:
            full += 1
            pricing = events.index("/pricing")
            assert "Case Study Downloaded" in events[:pricing]
            assert "Webinar Registered" in events[:pricing]
    assert full >= len(of(journeys, "decision_maker")) // 2


def test_crm_outcomes_come_from_the_server_key(journeys: list[Journey]) -> None:
    server = [m for j in journeys for m in j.messages if m.source == "server"]
    events = Counter(m.body["event"] for m in server)
    assert set(events) == {"sales.accepted", "sales.rejected"}
    for m in server:
        assert m.body["userId"] and "anonymousId" not in m.body
        if m.body["event"] == "sales.rejected":
            assert m.body["properties"]["reason"] == "not_ready"
        else:
            assert {"budget_usd", "need", "timeline_months"} <= set(m.body["traits"])
    outcomes = {j.persona for j in journeys if any(m.source == "server" for m in j.messages)}
    assert outcomes <= {"decision_maker", "hand_raiser", "manager"}
    bant = [
        j
        for j in of(journeys, "decision_maker")
        for m in j.messages
        if m.source == "browser" and "budget_usd" in m.body.get("traits", {})
    ]
    assert bant, "some decision makers state BANT on a form"


def test_messages_sorted_by_timestamp_within_span(journeys: list[Journey]) -> None:
    for journey in journeys:
        times = [m.at for m in journey.messages]
        assert times == sorted(times) and len(set(times)) == len(times)
    merged = ordered_messages(journeys)
    assert len(merged) == sum(len(j.messages) for j in journeys)
    assert [m.at for m in merged] == sorted(m.at for m in merged)
    assert merged[0].at >= START and merged[-1].at < START + timedelta(days=SPAN_DAYS)


def test_default_start_ends_before_now() -> None:
    now = datetime(2025, 6, 1, 12, tzinfo=UTC)
    journeys = build_journeys(200, 3, default_start(now))
    assert max(m.at for j in journeys for m in j.messages) < now


def test_naive_start_is_utc() -> None:
    naive = build_journeys(5, 9, START.replace(tzinfo=None))
    assert [j.messages for j in naive] == [j.messages for j in build_journeys(5, 9, START)]


# --- send -------------------------------------------------------------------------------------


@dataclass
class Collector:
    """A stand-in collector that records what arrives and can answer a scripted status first."""

    statuses: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        user = base64.b64decode(request.headers["Authorization"].split()[1]).decode()
        self.requests.append((asyncio.get_running_loop().time(), user.rstrip(":"), body))
        if self.statuses:
            status, headers = self.statuses.pop(0)
            return web.json_response({"success": False}, status=status, headers=headers)
        return web.json_response({"success": True})


@pytest.fixture
async def collector() -> AsyncIterator[tuple[Collector, str]]:
    recorder = Collector()
    app = web.Application()
    app.router.add_post("/v1/batch", recorder.handle)
    async with TestServer(app) as server:
        yield recorder, str(server.make_url("/"))


KEYS = ("browser-key", "server-key")


def received(recorder: Collector) -> list[dict[str, Any]]:
    return [m for _, _, body in recorder.requests for m in body["batch"]]


async def test_send_delivers_everything_with_the_right_keys(
    collector: tuple[Collector, str],
) -> None:
    recorder, url = collector
    journeys = build_journeys(60, 11, START)
    report = await send(journeys, url, KEYS, batch_size=25, concurrency=4, progress=False)
    total = sum(len(j.messages) for j in journeys)
    assert (report.accepted, report.failed, report.retries) == (total, 0, 0)
    assert report.requests == len(recorder.requests)
    for _, key, body in recorder.requests:
        assert 1 <= len(body["batch"]) <= 25
        datetime.fromisoformat(body["sentAt"].replace("Z", "+00:00"))
        server = {m.get("event", "").startswith("sales.") for m in body["batch"]}
        assert server == {key == "server-key"}
    messages = received(recorder)
    assert sorted(m["messageId"] for m in messages) == sorted(
        m.body["messageId"] for j in journeys for m in j.messages
    )
    lead_of = {m.body["messageId"]: j.user_id for j in journeys for m in j.messages}
    for journey in journeys:  # one lead's messages arrive in its own order
        arrived = [m["messageId"] for m in messages if lead_of[m["messageId"]] == journey.user_id]
        assert arrived == [m.body["messageId"] for m in journey.messages]


async def test_send_retries_503_after_retry_after(collector: tuple[Collector, str]) -> None:
    recorder, url = collector
    recorder.statuses = [(503, {"Retry-After": "1"})]
    journeys = build_journeys(3, 2, START)
    total = sum(len(j.messages) for j in journeys)
    report = await send(journeys, url + "v1/batch", KEYS, batch_size=1000, progress=True)
    assert (report.accepted, report.failed, report.retries) == (total, 0, 1)
    (first, _, body1), (second, _, body2) = recorder.requests[:2]
    assert second - first >= 0.95, "Retry-After: 1 must be honoured"
    assert body1["batch"] == body2["batch"]


async def test_send_retries_429_then_gives_up(collector: tuple[Collector, str]) -> None:
    recorder, url = collector
    recorder.statuses = [(429, {"Retry-After": "0"})] * 3
    journeys = build_journeys(2, 4, START)
    total = sum(len(j.messages) for j in journeys)
    report = await send(journeys, url, KEYS, batch_size=1000, progress=False, max_attempts=3)
    assert (report.accepted, report.failed, report.requests, report.retries) == (0, total, 3, 2)
    assert report.errors and "429" in report.errors[0]


async def test_send_does_not_retry_bad_requests(collector: tuple[Collector, str]) -> None:
    recorder, url = collector
    recorder.statuses = [(400, {})]
    journeys = build_journeys(2, 4, START)
    first = len(batches(ordered_messages(journeys), 5)[0])
    report = await send(journeys, url, KEYS, batch_size=5, concurrency=1, progress=False)
    assert report.failed == first and report.retries == 0
    assert report.accepted == sum(len(j.messages) for j in journeys) - first
    assert "400" in report.errors[0]


async def test_send_counts_unreachable_collector_as_failed() -> None:
    journeys = build_journeys(1, 4, START)
    report = await send(journeys, "http://127.0.0.1:9", KEYS, progress=False, max_attempts=1)
    assert report.accepted == 0 and report.failed == len(journeys[0].messages)
