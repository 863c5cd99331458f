"""apply(): offsets, transport dedupe, unknown types, flags, late events, merge of identities."""

from __future__ import annotations

import pytest

from stream.scoring import Model, apply, apply_joining, merge_states, new_state, snapshot
from stream.scoring.state import seen_before

from .helpers import at, ev, fold, identify, t_of


def test_offset_watermark_makes_redelivery_a_noop(model: Model) -> None:
    state = new_state("L1")
    first = apply(state, ev("web.page_view", at(0)), model, offset=(3, 10))
    assert first.applied and len(first.ledger) == 1
    again = apply(state, ev("web.page_view", at(0)), model, offset=(3, 10))  # new id, old offset
    assert not again.applied and again.ledger == [] and again.transitions == []
    other = apply(state, ev("web.page_view", at(0)), model, offset=(4, 2))  # other partition
    assert other.applied
    assert state.watermarks == {3: 10, 4: 2}


def test_same_event_id_is_ignored_entirely(model: Model) -> None:
    state = new_state("L1")
    event = ev("web.pricing_view", at(0), eid="dup")
    assert apply(state, event, model).applied
    before = state.encode()
    out = apply(state, ev("web.pricing_view", at(5), eid="dup"), model, offset=(0, 7))
    assert not out.applied and out.ledger == []
    assert state.watermarks == {0: 7}  # the offset still counts as consumed
    state.watermarks.clear()
    assert state.encode() == before


def test_unknown_type_keeps_clock_and_traits_scores_nothing(model: Model) -> None:
    run = fold(
        model,
        [
            ev("web.page_view", at(0)),
            ev("app.opened", at(3), traits={"seniority": "vp"}, account_id="acme"),
        ],
    )
    assert len(run.ledger) == 1
    assert run.state.clock == run.state.last_event
    snap = snapshot(run.state, model)
    assert snap["clock"] == at(3) and snap["fit"] == 25 and snap["account_id"] == "acme"


def test_derived_types_are_engine_made_only(model: Model) -> None:
    run = fold(model, [ev("journey.research_streak", at(0))])
    assert run.ledger == []


def test_machine_opens_are_dropped(model: Model) -> None:
    run = fold(
        model,
        [
            ev("email.open", at(0), properties={"message_id": "m", "machine_open": True}),
            ev("email.open", at(0, 1), properties={"message_id": "m"}),
        ],
    )
    # no ledger entry and no dedupe key for the machine open: the real open scores
    assert [(e.event_id, e.suppressed) for e in run.ledger] == [(run.ledger[0].event_id, None)]


def test_email_flags(model: Model) -> None:
    run = fold(model, [ev("email.hard_bounce", at(0))])
    assert run.ledger == [] and run.state.email_invalid and not run.state.email_suppressed
    run.feed(ev("email.unsubscribe", at(1)))
    assert run.state.email_suppressed
    run2 = fold(model, [ev("email.spam_complaint", at(0))])
    assert run2.state.email_suppressed
    flags = snapshot(run.state, model)["flags"]
    assert flags["email_invalid"] and flags["email_suppressed"]


def test_late_event_counts_at_its_own_time_decides_at_the_clock(model: Model) -> None:
    when = at(10, 10)
    run = fold(
        model,
        [
            identify(at(10)),
            *[ev("email.click", when, properties={"message_id": f"m{i}"}) for i in range(3)],
            ev("content.ebook_download", when, properties={"asset_id": "a"}),
            ev("web.page_view", when),  # awareness 9 + 8 + 1 = 18
            ev("trial.signup", at(9, 10)),
        ],
    )  # late by 1 d: 20·0.5^(1/30) = 19.54
    t = run.transitions[-1]
    assert (t.to_stage, t.at) == ("mql", t_of(10, 10))  # stamped with the lead's clock
    assert t.engagement == pytest.approx(18 + 20 * 0.5 ** (1 / 30))
    assert run.ledger[-1].at == t_of(9, 10)


def test_late_event_freq_window_at_its_own_time(model: Model) -> None:
    # cart.abandoned 1 per 7 d: day 10 scored; day 2 (late) — window (-5, 2] is empty → scored;
    # day 8 (late) — window (1, 8] holds day 2 → capped (day 10 is after t: not in the window)
    run = fold(
        model,
        [ev("cart.abandoned", at(10)), ev("cart.abandoned", at(2)), ev("cart.abandoned", at(8))],
    )
    assert [e.suppressed for e in run.ledger] == [None, None, "freq_cap"]


def test_merge_visitor_history_joins_known_lead(model: Model) -> None:
    visitor = fold(
        model,
        [
            ev("web.product_page_view", at(0, 10), lead="anon"),
            ev("web.product_page_view", at(1, 10), lead="anon"),  # + streak
            ev("email.open", at(1, 11), lead="anon", properties={"message_id": "m"}),
        ],
        lead="anon",
    )
    known = fold(
        model,
        [identify(at(0, 9)), ev("webinar.attended", at(1, 9), properties={"webinar_id": "w"})],
    )
    out = merge_states(known.state, visitor.state, identify(at(2), "A", eid="idf"), model)
    state = out.state
    snap = snapshot(state, model)
    # product views 4·0.5^(1/14)+4 at day 1 10:00, streak 5, open 1, webinar 10 — all decayed
    # to day 2 00:00 independently; contributions add
    expected_views = (4 * 0.5 ** (1 / 14) + 4) * 0.5 ** ((14 / 24) / 14)
    assert snap["types"]["web.product_page_view"] == pytest.approx(expected_views)
    assert snap["types"]["webinar.attended"] == pytest.approx(10 * 0.5 ** ((15 / 24) / 45))
    assert state.stage == "lead"  # the known lead's stage stays
    # dedupe keys united: the visitor's message m is a duplicate now
    again = apply(state, ev("email.open", at(2, 1), properties={"message_id": "m"}), model)
    assert again.ledger[0].suppressed == "dedupe"
    # window histories united: third product view on day 2 → streak capped (14 d)
    out2 = apply(state, ev("web.product_page_view", at(2, 2)), model)
    assert [e.suppressed for e in out2.ledger] == [None, "freq_cap"]
    # re-applying the identify is a no-op
    assert not merge_states(state, visitor.state, identify(at(2), "A", eid="idf"), model).applied


def test_merge_carries_a_hand_raiser_over(model: Model) -> None:
    visitor = fold(model, [ev("form.contact_sales", at(0, 10), lead="anon")], lead="anon")
    assert visitor.state.stage == "sales_ready"
    known = fold(model, [identify(at(0, 9), "B")])
    out = merge_states(known.state, visitor.state, identify(at(1), "B"), model)
    # one move, described as what happened: the hand-raiser is identified (not a second
    # fast-lane decision), routed by the grade its profile now gives it
    assert [(t.from_stage, t.to_stage, t.reason, t.route) for t in out.transitions] == [
        ("lead", "sales_ready", "identified", "ae")
    ]
    assert out.transitions[0].at == t_of(1)


def test_a_fast_laned_visitor_identifies_with_one_move(model: Model) -> None:
    visitor = fold(model, [ev("form.contact_sales", at(0, 10), lead="anon")], lead="anon")
    assert [(t.to_stage, t.reason, t.route) for t in visitor.transitions] == [
        ("sales_ready", "fast_lane", "self_serve")  # no profile yet: grade D
    ]
    out = merge_states(new_state("u1"), visitor.state, identify(at(0, 11), "A", lead="u1"), model)
    # anonymous -> sales_ready once (no "identify" to lead first, no second fast lane)
    assert [
        (t.from_stage, t.to_stage, t.reason, t.grade, t.route, t.priority) for t in out.transitions
    ] == [("anonymous", "sales_ready", "identified", "A", "ae", "P1")]
    assert out.state.stage == "sales_ready"


def test_merge_into_a_fresh_state_identifies_once(model: Model) -> None:
    visitor = fold(model, [ev("web.page_view", at(0), lead="anon")], lead="anon")
    out = merge_states(new_state("L9"), visitor.state, identify(at(1), "C", lead="L9"), model)
    assert [(t.from_stage, t.to_stage, t.reason) for t in out.transitions] == [
        ("anonymous", "lead", "identify")
    ]
    assert out.state.lead_id == "L9" and out.state.fit == 29


def test_merge_runs_the_mql_rule_at_the_identify_instant(model: Model) -> None:
    when = at(0, 10)
    visitor = fold(
        model,
        [
            *[
                ev("email.click", when, lead="anon", properties={"message_id": f"m{i}"})
                for i in range(3)
            ],
            ev("content.ebook_download", when, lead="anon", properties={"asset_id": "a"}),
            ev("trial.signup", when, lead="anon"),
        ],
        lead="anon",
    )  # 9 + 8 + 20 = 37
    out = merge_states(new_state("L1"), visitor.state, identify(at(0, 10)), model)
    assert [(t.to_stage, t.at) for t in out.transitions] == [
        ("lead", t_of(0, 10)),
        ("mql", t_of(0, 10)),
    ]


def test_merge_respects_the_offset_watermark(model: Model) -> None:
    visitor = fold(model, [ev("web.page_view", at(0), lead="anon")], lead="anon")
    known = new_state("L1")
    first = merge_states(known, visitor.state, identify(at(1)), model, offset=(1, 5))
    assert first.applied and known.watermarks == {1: 5}
    again = merge_states(known, visitor.state, identify(at(1)), model, offset=(1, 5))
    assert not again.applied and again.transitions == []


def test_event_round_trip_and_errors() -> None:
    from stream.scoring import Event, EventError

    d = {
        "event_id": "e1",
        "type": "email.click",
        "channel": "email",
        "occurred_at": "2026-01-05T11:00:00.250+01:00",
        "received_at": "2026-01-05T10:00:01Z",
        "lead_id": "L1",
        "anonymous_id": "a",
        "user_id": "u",
        "email": "x@example.com",
        "account_id": "acme",
        "source": "sendgrid",
        "properties": {"message_id": "m"},
        "traits": {"employees": 30},
        "context": {"ip": "203.0.113.9"},
    }
    event = Event.from_dict(d)
    assert event.to_dict() == d
    assert Event.from_dict(event.to_dict()) == event
    assert event.t_us == 1767607200250000  # 10:00:00.25Z
    for bad, field in [
        ({**d, "event_id": ""}, "event_id"),
        ({**d, "occurred_at": "2026-01-05T10:00:00"}, "offset"),
        ({**d, "occurred_at": "yesterday"}, "occurred_at"),
        ({**d, "channel": "fax"}, "channel"),
        ({**d, "traits": {"employees": "many"}}, "traits.employees"),
        ({**d, "traits": {"tech_fit": 1}}, "traits.tech_fit"),
        ({**d, "properties": []}, "properties"),
        ({**d, "user_id": 7}, "user_id"),
    ]:
        with pytest.raises(EventError, match=field):
            Event.from_dict(bad)


def test_apply_joining_merges_at_a_tying_event_then_applies_it(model: Model) -> None:
    """A track that first ties a visitor: the visitor merges at the track's instant (an
    identify made of it), then the track itself applies; a conflict is recorded on its own."""
    visitor = fold(model, [ev("web.pricing_view", at(1), lead="anon:v")], lead="anon:v")
    state = new_state("u1")
    track = ev("webinar.attended", at(2), lead="u1", eid="t1")
    outcomes, applied = apply_joining(
        state, track, model, visitors=[visitor.state], conflicts=["other"], position=(7, 3)
    )
    assert applied and len(outcomes) == 3  # merge, conflict, the event
    assert seen_before(state, "merge:t1") and seen_before(state, "t1")
    assert seen_before(state, "conflict:t1")
    assert set(state.acc) >= {"web.pricing_view", "webinar.attended"}


def test_apply_joining_with_an_identify_is_the_merge_only(model: Model) -> None:
    visitor = fold(model, [ev("web.pricing_view", at(1), lead="anon:v")], lead="anon:v")
    state = new_state("u1")
    outcomes, applied = apply_joining(
        state, identify(at(2), "A", lead="u1", eid="idf"), model, visitors=[visitor.state]
    )
    assert applied and len(outcomes) == 1 and seen_before(state, "idf")
    assert not seen_before(state, "merge:idf")


def test_apply_joining_merge_only_applies_no_event(model: Model) -> None:
    visitor = fold(model, [ev("web.pricing_view", at(1), lead="anon:v")], lead="anon:v")
    state = new_state("u1")
    late = ev("identify", at(2), lead="u1", eid="merge:m1")
    outcomes, _applied = apply_joining(
        state, late, model, visitors=[visitor.state], merge_only=True, merge_marks=["merge:m2"]
    )
    assert len(outcomes) == 1 and seen_before(state, "merge:m2")
    assert "web.pricing_view" in state.acc
