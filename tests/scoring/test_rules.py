"""Dedupe, frequency caps (rolling and calendar-day), aliases, type/group/engagement caps."""

from __future__ import annotations

import pytest

from stream.scoring import Model, snapshot
from stream.scoring.rules import clamp_cap, engagement_of

from .helpers import at, ev, fold, model_with, t_of


def suppressed(run_ledger: list) -> list[str | None]:  # type: ignore[type-arg]
    return [e.suppressed for e in run_ledger]


def test_page_view_cap_five_per_calendar_day(model: Model) -> None:
    # 6 views on day 0 → 5 scored, the 6th capped; the next UTC day starts a new count
    events = [ev("web.page_view", at(0, 8, m)) for m in range(6)]
    events.append(ev("web.page_view", at(1, 0)))
    run = fold(model, events)
    assert suppressed(run.ledger) == [None] * 5 + ["freq_cap", None]


@pytest.mark.parametrize(
    ("fourth_day", "expected"),
    [
        (6.999, "freq_cap"),  # (t-7, t] still holds the day-0 click: 3 earlier → capped
        (7.0, None),  # exactly 7 d after the day-0 click: outside, only 2 in window
        (7.001, None),
    ],
)
def test_rolling_window_edge(model: Model, fourth_day: float, expected: str | None) -> None:
    # email.click: 3 per 7 d. Clicks at day 0, 1, 2 (distinct messages) then one more.
    clicks = [ev("email.click", at(d), properties={"message_id": f"m{d}"}) for d in (0, 1, 2)] + [
        ev("email.click", at(fourth_day), properties={"message_id": "m9"})
    ]
    run = fold(model, clicks)
    assert suppressed(run.ledger) == [None, None, None, expected]


def test_capped_events_do_not_count_toward_the_cap(model: Model) -> None:
    # social.engagement 2 per 7 d: day 0, 1 scored; day 2, 3 capped; day 7.5: window
    # (0.5, 7.5] holds only the day-1 scored entry → scored (the capped ones never count)
    days = [0, 1, 2, 3, 7.5]
    run = fold(model, [ev("social.engagement", at(d)) for d in days])
    assert suppressed(run.ledger) == [None, None, "freq_cap", "freq_cap", None]


@pytest.mark.parametrize(
    ("tz", "expected"),
    [
        # 22:30Z and 23:30Z on Jan 5: one UTC date → second pricing view capped (1 per day)
        ("UTC", [None, "freq_cap"]),
        # Berlin (UTC+1): 23:30 Jan 5 and 00:30 Jan 6 → two dates, both scored
        ("Europe/Berlin", [None, None]),
        # New York (UTC-5): 17:30 and 18:30 on Jan 5 → one date
        ("America/New_York", [None, "freq_cap"]),
    ],
)
def test_calendar_day_in_model_time_zone(tz: str, expected: list[str | None]) -> None:
    model = model_with({"timezone": tz})
    run = fold(
        model, [ev("web.pricing_view", at(0, 22, 30)), ev("web.pricing_view", at(0, 23, 30))]
    )
    assert suppressed(run.ledger) == expected


def test_berlin_midnight_boundary_exact() -> None:
    # Berlin 00:00 Jan 6 = 23:00Z Jan 5. product.activation 1 per calendar day.
    model = model_with({"timezone": "Europe/Berlin"})
    run = fold(
        model,
        [
            ev("product.activation", at(0, 22, 59, 59)),  # 23:59:59 Jan 5 Berlin
            ev("product.activation", at(0, 23)),  # 00:00:00 Jan 6 Berlin: new date
            ev("product.activation", at(1, 22, 59, 59)),  # 23:59:59 Jan 6 Berlin: capped
        ],
    )
    assert suppressed(run.ledger) == [None, None, "freq_cap"]


def test_dedupe_scored_or_suppressed_whole_history(model: Model) -> None:
    opens = [
        ev("email.open", at(0), properties={"message_id": "m1"}),
        ev("email.open", at(0, 1), properties={"message_id": "m1"}),  # duplicate of scored
        ev("email.open", at(0, 2), properties={"message_id": "m2"}),
        ev("email.open", at(0, 3), properties={"message_id": "m3"}),
        ev("email.open", at(0, 4), properties={"message_id": "m4"}),  # 3 in 7 d → capped
        ev("email.open", at(60), properties={"message_id": "m4"}),  # duplicate of suppressed
        ev("email.open", at(60), properties={}),  # no key: never a duplicate
        ev("email.open", at(60, 1), properties={}),
        ev("email.click", at(60, 2), properties={"message_id": "m1"}),  # other type: not dup
    ]
    run = fold(model, opens)
    assert suppressed(run.ledger) == [
        None,
        "dedupe",
        None,
        None,
        "freq_cap",
        "dedupe",
        None,
        None,
        None,
    ]


def test_aliases_share_one_type(model: Model) -> None:
    run = fold(
        model,
        [
            ev("meeting.requested", at(0)),
            ev("form.contact_sales", at(3)),  # same type: 1 per 7 d → capped
            ev("chat.sales_request", at(7)),  # exactly 7 d later: scored
        ],
    )
    assert [e.type for e in run.ledger] == ["sales.demo_requested"] * 3
    assert suppressed(run.ledger) == [None, "freq_cap", None]
    # 30·0.5^(7/30) + 30 = 25.50 + 30 = 55.50 → type cap 30
    snap = snapshot(run.state, model)
    assert snap["types"] == {"sales.demo_requested": 30}
    assert snap["top_contributors"] == [{"type": "sales.demo_requested", "value": 30}]


def test_type_cap_clamps_decayed_sum_not_earnings(model: Model) -> None:
    # 5 page views at day 0 10:00 and 5 at day 1 10:00: 5·0.5^(1/7) + 5 = 9.529 → cap 8
    events = [ev("web.page_view", at(d, 10)) for d in (0, 1) for _ in range(5)]
    run = fold(model, events)
    assert all(e.base_points == 1 and e.suppressed is None for e in run.ledger)
    assert snapshot(run.state, model)["types"]["web.page_view"] == 8
    # 6 d later: 9.529·0.5^(6/7) = 5.245 < 8: the cap no longer binds
    value = snapshot(run.state, model, t_of(7, 10))["types"]["web.page_view"]
    assert value == pytest.approx((5 * 0.5 ** (1 / 7) + 5) * 0.5 ** (6 / 7))


def test_negative_type_cap_is_a_minimum(model: Model) -> None:
    run = fold(model, [ev("email.unsubscribe", at(0)), ev("email.unsubscribe", at(0))])
    # -15 + -15 = -30 → min cap -15
    snap = snapshot(run.state, model)
    assert snap["types"]["email.unsubscribe"] == -15
    assert snap["groups"]["negative"] == -15
    assert snap["engagement"] == -15


def test_group_cap(model: Model) -> None:
    events = [
        ev("content.ebook_download", at(0), properties={"asset_id": "a1"}),  # 8
        ev("content.ebook_download", at(0), properties={"asset_id": "a2"}),  # 8 → 16
        *[ev("email.click", at(0), properties={"message_id": f"m{i}"}) for i in range(3)],  # 9
        *[ev("web.page_view", at(0)) for _ in range(5)],  # 5
    ]
    snap = snapshot(fold(model, events).state, model)
    # 16 + 9 + 5 = 30 → awareness cap 25
    assert snap["groups"]["awareness"] == 25
    assert snap["engagement"] == 25


@pytest.mark.parametrize(
    ("value", "cap", "expected"),
    [(9.5, 8, 8), (7.0, 8, 7.0), (-30, -15, -15), (-10, -15, -10), (500, None, 500)],
)
def test_clamp_cap(value: float, cap: float | None, expected: float) -> None:
    assert clamp_cap(value, cap) == expected


def test_engagement_clamp(model: Model) -> None:
    # 25 + 45 + 60 = 130 → 100; -150 → -100
    assert engagement_of({"awareness": 25, "consideration": 45, "decision": 60}, model) == 100
    assert engagement_of({"negative": -150}, model) == -100
