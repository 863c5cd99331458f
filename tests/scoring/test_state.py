"""LeadState codec and bounds: exact round trips, clear errors, bounded history."""

from __future__ import annotations

import pytest

from stream.scoring import LeadState, Model, StateDecodeError, apply, new_state, snapshot

from .helpers import at, ev, fold, identify


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
    assert len(state.seen) == model.seen_ids
    assert len(state.encode()) < 6000
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
