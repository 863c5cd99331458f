"""Segment spec messages to canonical events: types, ids, traits, context, refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from stream.collector.mapping import load_mapping
from stream.collector.segment import (
    Accepted,
    Batch,
    Rejected,
    Source,
    canonical,
    check_depth,
    parse_json,
    process,
    split_body,
)
from stream.errors import (
    ForbiddenTypeError,
    InvalidJsonError,
    SchemaViolationError,
    SizeViolationError,
)
from stream.scoring.events import Event

from .conftest import NOW

MAPPING = load_mapping()
BROWSER = Source("website", "browser", "browser-key")
SERVER = Source("crm", "server", "server-key")


def event_of(message: dict[str, Any], source: Source = BROWSER) -> dict[str, Any]:
    event = canonical(message, None, source, MAPPING, NOW)
    Event.from_dict(event)  # the engine accepts what the collector produces
    return event


def test_track_full_record() -> None:
    event = event_of(
        {
            "type": "track",
            "event": "Webinar Registered",
            "messageId": "msg-1",
            "anonymousId": "anon-1",
            "userId": 42,
            "timestamp": "2025-03-01T11:00:00Z",
            "properties": {"webinar_id": "w-7"},
            "context": {
                "ip": "203.0.113.9",
                "userAgent": "Mozilla/5.0",
                "library": {"name": "analytics.js", "version": "5.2.0"},
                "page": {"url": "https://acme.com/webinars", "path": "/webinars", "search": "?q"},
                "campaign": {"name": "spring", "source": "linkedin"},
                "groupId": "acct-9",
                "traits": {"email": " Ada@Acme.IO ", "title": "CTO"},
                "locale": "de-DE",
            },
        }
    )
    assert event == {
        "event_id": "msg-1",
        "type": "webinar.registered",
        "channel": "web",
        "occurred_at": "2025-03-01T11:00:00.000Z",
        "received_at": "2025-03-01T12:00:00.000Z",
        "anonymous_id": "anon-1",
        "user_id": "42",
        "email": "ada@acme.io",
        "account_id": "acct-9",
        "source": "website",
        "properties": {"webinar_id": "w-7"},
        "traits": {"title": "CTO", "seniority": "c_level", "email_type": "business"},
        "context": {
            "page": {"url": "https://acme.com/webinars", "path": "/webinars"},
            "userAgent": "Mozilla/5.0",
            "library": {"name": "analytics.js", "version": "5.2.0"},
            "campaign": {"name": "spring", "source": "linkedin"},
        },
    }


def test_missing_values_are_null_or_empty() -> None:
    event = event_of({"type": "track", "event": "Trial Started", "userId": "u1"})
    assert event["anonymous_id"] is None and event["email"] is None
    assert event["account_id"] is None
    assert event["properties"] == {} and event["traits"] == {} and event["context"] == {}
    assert event["occurred_at"] == event["received_at"]
    assert event["channel"] == "product"
    assert len(event["event_id"]) == 36  # a server uuid4


def test_unmapped_track_keeps_its_name() -> None:
    event = event_of({"type": "track", "event": "Button Clicked", "anonymousId": "a"})
    assert event["type"] == "unmapped"
    assert event["properties"] == {"event_name": "Button Clicked"}


@pytest.mark.parametrize(
    ("message", "expected_type"),
    [
        ({"type": "page", "properties": {"url": "https://acme.com/pricing"}}, "web.pricing_view"),
        ({"type": "page", "context": {"page": {"path": "/careers"}}}, "web.careers_view"),
        ({"type": "page", "name": "Home"}, "web.page_view"),
        ({"type": "screen", "name": "Pricing"}, "web.pricing_view"),
        ({"type": "screen", "properties": {"path": "/features/x"}}, "web.product_page_view"),
    ],
)
def test_page_and_screen(message: dict[str, Any], expected_type: str) -> None:
    event = event_of({**message, "anonymousId": "a"})
    assert event["type"] == expected_type
    assert event["channel"] == "web"


def test_page_properties_get_the_page_context() -> None:
    event = event_of(
        {
            "type": "page",
            "name": "Pricing",
            "anonymousId": "a",
            "context": {"page": {"url": "https://acme.com/pricing?x=1", "path": "/pricing"}},
        }
    )
    assert event["properties"] == {
        "url": "https://acme.com/pricing?x=1",
        "path": "/pricing",
        "name": "Pricing",
    }


def test_identify_maps_traits() -> None:
    event = event_of(
        {
            "type": "identify",
            "userId": "u1",
            "anonymousId": "a1",
            "traits": {
                "email": "bob@gmail.com",
                "title": "Marketing Intern",
                "company": {"id": "c-1", "employee_count": 12},
                "country": "United Kingdom",
            },
        }
    )
    assert event["type"] == "identify"
    assert event["email"] == "bob@gmail.com"
    assert event["account_id"] == "c-1"
    assert event["traits"] == {
        "title": "Marketing Intern",
        "seniority": "intern",
        "employees": 12,
        "country": "GB",
        "email_type": "free",
    }


def test_group_and_alias() -> None:
    group = event_of(
        {
            "type": "group",
            "groupId": "acct-1",
            "userId": "u1",
            "traits": {"employees": 500, "industry": "Healthcare", "country": "CA"},
        }
    )
    assert group["type"] == "group" and group["account_id"] == "acct-1"
    assert group["traits"] == {"employees": 500, "industry": "healthcare", "country": "CA"}
    alias = event_of({"type": "alias", "userId": "u1", "previousId": "anon-9"})
    assert alias["type"] == "alias"
    assert alias["properties"] == {"previous_id": "anon-9"}


def test_traits_on_track_events_come_from_context() -> None:
    event = event_of(
        {
            "type": "track",
            "event": "Demo Requested",
            "userId": "u1",
            "context": {"traits": {"budget_usd": 50000, "timeline_months": 2, "need": True}},
        }
    )
    assert event["traits"] == {"budget_usd": 50000, "timeline_months": 2, "need": True}
    assert event["channel"] == "web"


def test_crm_types_need_a_server_key() -> None:
    message = {
        "type": "track",
        "event": "sales.rejected",
        "userId": "u1",
        "properties": {"reason": "no_budget"},
    }
    with pytest.raises(ForbiddenTypeError) as info:
        canonical(message, None, BROWSER, MAPPING, NOW)
    assert info.value.reason == "forbidden_type"
    event = event_of(message, SERVER)
    assert (event["type"], event["channel"]) == ("sales.rejected", "crm")
    assert event["properties"] == {"reason": "no_budget"}


def test_manual_override_needs_a_stage() -> None:
    message = {"type": "track", "event": "manual.override", "userId": "u1"}
    with pytest.raises(SchemaViolationError, match="stage"):
        canonical(message, None, SERVER, MAPPING, NOW)
    message["properties"] = {"stage": "mql", "reason": "sales asked"}
    assert event_of(message, SERVER)["type"] == "manual.override"


@pytest.mark.parametrize(
    ("message", "match"),
    [
        ({"type": "track", "event": "Trial Started"}, "no anonymousId, userId or email"),
        ({"type": "track", "anonymousId": "a"}, "event name"),
        ({"type": "track", "event": 5, "anonymousId": "a"}, "event name"),
        ({"type": "bogus", "anonymousId": "a"}, "type"),
        ({"anonymousId": "a"}, "type"),
        ({"type": "track", "event": "x", "anonymousId": {"a": 1}}, "anonymousId"),
        ({"type": "track", "event": "x", "anonymousId": True}, "anonymousId"),
        ({"type": "track", "event": "x", "anonymousId": "a" * 600}, "anonymousId"),
        ({"type": "track", "event": "x", "anonymousId": "a", "properties": []}, "properties"),
        ({"type": "track", "event": "x", "anonymousId": "a", "context": "x"}, "context"),
        ({"type": "track", "event": "x", "anonymousId": "a", "messageId": [1]}, "messageId"),
        ({"type": "track", "event": "x", "anonymousId": "a", "timestamp": "soon"}, "timestamp"),
        ({"type": "track", "event": "x", "anonymousId": "a", "timestamp": "2099-01-01"}, "future"),
        ({"type": "group", "userId": "u"}, "groupId"),
        ({"type": "alias", "userId": "u"}, "previousId"),
        ({"type": "identify", "userId": "u", "traits": "x"}, "traits"),
        (
            {"type": "track", "event": "x", "userId": "u", "properties": {"asset_id": None}},
            "asset_id",
        ),
        ({"type": "track", "event": "x", "userId": "u", "properties": {"reason": 5}}, "reason"),
    ],
)
def test_schema_violations(message: dict[str, Any], match: str) -> None:
    with pytest.raises(SchemaViolationError, match=match):
        canonical(message, None, BROWSER, MAPPING, NOW)


def test_email_alone_is_an_identity() -> None:
    event = event_of({"type": "track", "event": "Email Opened", "properties": {"email": "a@b.co"}})
    assert event["email"] == "a@b.co"


def test_process_mixes_accepted_and_rejected() -> None:
    batch = Batch(
        [
            {"type": "track", "event": "Ebook Downloaded", "anonymousId": "a", "messageId": "1"},
            {"type": "track", "event": "Ebook Downloaded"},
            "not an object",
            {"type": "track", "event": "x", "anonymousId": "a", "properties": {"p": "x" * 40000}},
        ]
    )
    outcomes = process(batch, "batch", BROWSER, MAPPING, NOW, 32 * 1024)
    assert isinstance(outcomes[0], Accepted)
    assert outcomes[0].key == b"a" and outcomes[0].message_id == "1"
    reasons = [o.error.reason for o in outcomes[1:] if isinstance(o, Rejected)]
    assert reasons == ["schema_violation", "schema_violation", "size_violation"]
    assert isinstance(outcomes[3], Rejected) and outcomes[3].key == b"a"


def test_batch_context_and_sent_at_are_inherited() -> None:
    body = {
        "batch": [
            {"type": "track", "event": "x", "anonymousId": "a", "timestamp": "2025-03-01T10:00:00Z"}
        ],
        "context": {"library": {"name": "analytics-python", "version": "2.4.0"}},
        "sentAt": "2025-03-01T10:00:01Z",
    }
    batch = split_body("batch", body, 10)
    [outcome] = process(batch, "batch", BROWSER, MAPPING, NOW, 32 * 1024)
    assert isinstance(outcome, Accepted)
    assert outcome.event["occurred_at"] == "2025-03-01T11:59:59.000Z"
    assert outcome.event["context"]["library"]["name"] == "analytics-python"


@pytest.mark.parametrize("body", [[], "x", 1, None, {"batch": {}}, {"batch": "x"}])
def test_split_body_refuses_shapes(body: Any) -> None:
    with pytest.raises(SchemaViolationError):
        split_body("batch", body, 10)


def test_split_body_counts_events() -> None:
    with pytest.raises(SizeViolationError, match="exceeds 2 events"):
        split_body("batch", {"batch": [{}, {}, {}]}, 2)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b'{"a": }',
        b"\xff\xfe",
        b'{"a": "\xed\xa0\x80"}',
        b"[" * 2000 + b"]" * 2000,
        b"NaN",
    ],
)
def test_parse_json_failures_are_invalid_json(raw: bytes) -> None:
    with pytest.raises(InvalidJsonError):
        parse_json(raw)


def test_depth_limit() -> None:
    check_depth([[[]]], limit=3)
    with pytest.raises(InvalidJsonError, match="deeper"):
        check_depth([[[[]]]], limit=3)
    with pytest.raises(InvalidJsonError):
        parse_json(b'{"a":' * 150 + b"1" + b"}" * 150)


SCHEMA = Path(__file__).parents[2] / "schemas" / "canonical-event.schema.json"


def test_events_match_the_canonical_schema() -> None:
    import jsonschema_rs

    validator = jsonschema_rs.validator_for(orjson.loads(SCHEMA.read_bytes()))
    messages: list[dict[str, Any]] = [
        {"type": "track", "event": "Ebook Downloaded", "anonymousId": "a", "messageId": "m"},
        {"type": "track", "event": "Custom Thing", "userId": "u"},
        {"type": "page", "anonymousId": "a", "context": {"page": {"url": "https://x.io/pricing"}}},
        {"type": "identify", "userId": "u", "traits": {"email": "a@b.co", "title": "CEO"}},
        {"type": "group", "userId": "u", "groupId": "g", "traits": {"employees": 10}},
        {"type": "alias", "userId": "u", "previousId": "a"},
    ]
    for message in messages:
        validator.validate(event_of(message))
