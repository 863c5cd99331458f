"""LeadState codec and bounds: exact round trips, clear errors, bounded history."""

from __future__ import annotations

import dataclasses

import pytest

from stream.scoring import (
    LeadState,
    Model,
    StateDecodeError,
    apply,
    merge_states,
    new_state,
    snapshot,
)
from stream.scoring.events import US_PER_DAY
from stream.scoring.state import seen_before

from .helpers import BASE_US, at, ev, fold, identify


def test_round_trip_of_a_busy_lead(model: Model) -> None:
    when = at(0, 10)
    run = fold(
        model,
        [
            identify(at(0, 9), "A", need=True, budget_usd=50_000),
            *[ev("email.open", when, properties={"message_id": f"m{i}"}) for i in range(4)],
            ev("web.product_page_view", at(0, 11)),
            ev("web.product_page_view", at(1, 11)),
            ev("trial.signup", at(1, 12)),
            ev("email.hard_bounce", at(1, 13)),
            ev("sales.rejected", at(2), properties={"reason": "not_ready"}),
        ],
    )
    apply(run.state, ev("web.page_view", at(3)), model, offset=(2, 99))
    data = run.state.encode()
    again = LeadState.decode(data)
    assert again == run.state
    assert again.encode() == data


def test_new_state_round_trip() -> None:
    state = new_state("L1")
    assert LeadState.decode(state.encode()) == state
    assert state.stage == "anonymous"


@pytest.mark.parametrize("data", [b"", b"{}", b"[2]", b"[1, 2, 3]", b"\xff", b'[1,"x"]'])
def test_decode_errors_say_what_to_do(data: bytes) -> None:
    with pytest.raises(StateDecodeError, match="replaying"):
        LeadState.decode(data)


def test_history_is_bounded(model: Model) -> None:
    state = new_state("L1")
    for day in range(200):
        for i in range(8):
            apply(state, ev("web.page_view", at(day, 9, i)), model)
            apply(
                state,
                ev("email.open", at(day, 10, i), properties={"message_id": f"{day}-{i}"}),
                model,
            )
    # page views: calendar-day cap (2 d span) + 7 d grace → 9 days × 5 scored, plus the
    # current day's 5 (pruning runs once per day of the lead's clock)
    assert len(state.times["web.page_view"]) <= 50
    assert len(state.keys["email.open"]) == model.keys_per_type  # 200 most recent keys
    # event ids: 37 days of the lead's clock (+ the current day) × 16 events a day
    assert len(state.seen) <= 39 * 16
    assert len(state.encode()) < 16000
    # the scores do not depend on bounding: both types at their caps, 8 + 5 = 13
    assert snapshot(state, model)["groups"]["awareness"] == 13


def test_dormant_lead_sheds_negligible_sums(model: Model) -> None:
    state = new_state("L1")
    apply(state, ev("web.page_view", at(0)), model)
    apply(state, ev("email.spam_complaint", at(0)), model)
    apply(state, ev("web.careers_view", at(400)), model)
    # 1·0.5^(400/7) ≈ 1e-17 is dropped; a no-decay −50 never is
    assert set(state.acc) == {"email.spam_complaint", "web.careers_view"}
    assert "web.page_view" not in state.times


# --- event-id dedupe: days of the lead's clock, not a count --------------------------------


def test_an_event_id_is_remembered_for_the_retention_days_however_busy(model: Model) -> None:
    state = new_state("L1")
    first = ev("web.pricing_view", at(0, 9), eid="the-first")
    assert apply(state, first, model).applied
    # 3,000 other events in 30 days (the old bound forgot an id after 128 of them)
    for i in range(3000):
        apply(state, ev("web.page_view", at(i // 100, 10, i % 60), eid=f"pv-{i}"), model)
    retry = apply(state, first, model)
    assert not retry.applied and retry.ledger == [] and retry.transitions == []


def test_a_quiet_lead_keeps_its_ids_however_long_the_wall_clock_runs(model: Model) -> None:
    state = new_state("L1")
    apply(state, ev("web.pricing_view", at(0, 9), eid="e1"), model)
    # nothing else happens to the lead: its own clock stays, so a retry a year later (in wall
    # time) is still a duplicate — only the lead's event time moves the bound
    data = LeadState.decode(state.encode())
    assert not apply(data, ev("web.pricing_view", at(0, 9), eid="e1"), model).applied


def test_ids_are_forgotten_after_the_lead_clock_moves_past_the_retention(model: Model) -> None:
    days = model.seen_us // US_PER_DAY
    state = new_state("L1")
    apply(state, ev("web.pricing_view", at(0, 9), eid="old"), model)
    apply(state, ev("web.page_view", at(days - 1, 9), eid="inside"), model)
    assert _seen(state, "old")
    apply(state, ev("web.page_view", at(days + 2, 9), eid="later"), model)
    assert not _seen(state, "old")  # pruned on the lead's new day
    assert _seen(state, "inside") and _seen(state, "later")


def test_a_late_event_is_remembered_from_the_day_it_was_applied(model: Model) -> None:
    days = model.seen_us // US_PER_DAY
    state = new_state("L1")
    apply(state, ev("web.page_view", at(100), eid="now"), model)
    # an event 60 days late: remembered as of the lead's day 100, not its own day 40
    apply(state, ev("web.pricing_view", at(40), eid="late"), model)
    apply(state, ev("web.page_view", at(100 + days - 1), eid="next"), model)
    assert _seen(state, "late")
    assert not apply(state, ev("web.pricing_view", at(40), eid="late"), model).applied


def test_a_runaway_lead_is_bounded_by_seen_event_max(model: Model) -> None:
    small = dataclasses.replace(model, seen_max=1000)
    state = new_state("bot")
    for i in range(1500):
        apply(state, ev("web.page_view", at(0, 10, i % 60), eid=f"b-{i}"), small)
    assert len(state.seen) == 1000
    assert not _seen(state, "b-0") and _seen(state, "b-500") and _seen(state, "b-1499")


def test_merge_unites_remembered_ids(model: Model) -> None:
    visitor = fold(model, [ev("web.pricing_view", at(0, 9), "anon:v", "v1")], "anon:v").state
    known = fold(model, [ev("web.page_view", at(1, 9), eid="k1")]).state
    merge_states(known, visitor, identify(at(2, 9), "A"), model)
    for eid in ("v1", "k1"):
        assert _seen(known, eid)
    assert not apply(known, ev("web.pricing_view", at(0, 9), eid="v1"), model).applied


def test_codec_keeps_the_day_of_each_id(model: Model) -> None:
    state = new_state("L1")
    for day in (0, 0, 3, 9):
        apply(state, ev("web.page_view", at(day, 9), eid=f"d{day}-{len(state.seen)}"), model)
    again = LeadState.decode(state.encode())
    assert again.seen == state.seen
    assert sorted(set(again.seen.values())) == [BASE_US // US_PER_DAY + d for d in (0, 3, 9)]


def _seen(state: LeadState, event_id: str) -> bool:
    return seen_before(state, event_id)


def test_an_mql_ticked_daily_is_pruned_too(model: Model) -> None:
    # An MQL has a daily tick; firing it before an event moved the clock into the event's
    # day, so the day change was never seen and nothing was pruned (the history grew forever).
    state = new_state("L1")
    apply(state, identify(at(0, 9), "A"), model)
    kinds = ["web.page_view", "email.open", "web.pricing_view", "web.product_page_view"]
    stages = set()
    for i in range(2000):
        kind = kinds[i % 4]
        props = {"message_id": f"m{i}"} if kind == "email.open" else {}
        apply(state, ev(kind, at(i * 365 / 2000, 10), properties=props), model)
        stages.add(state.stage)
    assert "mql" in stages
    assert sum(len(t) for t in state.times.values()) < 100
    assert len(state.seen) < 250  # 37 days of ~5.5 events a day
    assert len(state.encode()) < 12_000
