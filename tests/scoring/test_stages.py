"""Stage machine: identify, MQL by grade, handoff with BANT, fast lane, hysteresis ticks,
nurture cooldown, sales outcomes, opportunities, disqualification and manual override."""

from __future__ import annotations

from typing import Any

import pytest

from stream.scoring import Model, next_tick_at, snapshot, tick

from .helpers import Run, at, ev, fold, identify, model_with, t_of


@pytest.fixture
def model() -> Model:
    """The stage machine of the model text, without the SLA escalation the packaged model
    adds (an addition that emits extra `sla_breached` lines; tests/scoring/test_sla.py)."""
    return model_with({"stages/escalation": None})


def awareness(total: int, when: str) -> list[Any]:
    """Awareness entries worth exactly `total` at one instant (no decay between them)."""
    out = []
    assets = iter(["a1", "a2"])
    while total >= 8 and len([e for e in out if e.type == "content.ebook_download"]) < 2:
        out.append(ev("content.ebook_download", when, properties={"asset_id": next(assets)}))
        total -= 8
    for i in range(min(3, total // 3)):
        out.append(ev("email.click", when, properties={"message_id": f"m{i}"}))
        total -= 3
    out.extend(ev("web.page_view", when) for _ in range(total))
    return out


def override(stage: str, when: str, **kw: Any) -> Any:
    return ev("manual.override", when, properties={"stage": stage, "reason": "test"}, **kw)


def test_identify_moves_anonymous_to_lead(model: Model) -> None:
    run = fold(model, [ev("web.page_view", at(0, 9)), ev("identify", at(0, 10))])
    assert run.moves() == [("anonymous", "lead", "identify")]
    assert run.transitions[0].at == t_of(0, 10)
    assert run.transitions[0].seq == 1


def test_an_event_with_email_identifies(model: Model) -> None:
    run = fold(model, [ev("web.page_view", at(0, 9), email="x@example.com")])
    assert run.moves() == [("anonymous", "lead", "identify")]


@pytest.mark.parametrize(
    ("grade", "aware", "expected"),
    [
        ("A", 15, True),  # 15 + trial 20 = 35 ≥ 35
        ("A", 14, False),  # 34
        ("B", 25, True),  # 25 + 20 = 45 ≥ 45
        ("B", 24, False),  # 44
        ("C", 25, False),  # grades C and D never MQL by score
        ("D", 25, False),
    ],
)
def test_mql_threshold_by_grade(model: Model, grade: str, aware: int, expected: bool) -> None:
    when = at(0, 10)
    run = fold(
        model,
        [identify(at(0, 9), grade), *awareness(aware, when), ev("trial.signup", when, eid="trial")],
    )
    mql = [t for t in run.transitions if t.to_stage == "mql"]
    if not expected:
        assert mql == []
        return
    (t,) = mql
    assert (t.from_stage, t.reason, t.at, t.threshold) == (
        "lead",
        "score",
        t_of(0, 10),
        {"A": 35, "B": 45}[grade],
    )
    assert (t.route, t.priority, t.sla, t.task) == ("sdr", "P2", "P1D", "qualify_bant")
    assert t.trigger_event_ids == ("trial",)
    assert t.engagement == aware + 20
    assert t.top_contributors[0] == ("trial.signup", 20)


def test_top_contributors_largest_first(model: Model) -> None:
    when = at(0, 10)
    run = fold(model, [identify(at(0, 9)), *awareness(15, when), ev("trial.signup", when)])
    (t,) = [t for t in run.transitions if t.to_stage == "mql"]
    # trial 20, ebook 8, clicks 6, page views 1
    assert t.top_contributors == (
        ("trial.signup", 20),
        ("content.ebook_download", 8),
        ("email.click", 6),
        ("web.page_view", 1),
    )


def test_mql_needs_mofu_guard(model: Model) -> None:
    # awareness 25 + early pricing views (2 each, tagged): ≥ 35 but no mid-funnel touch
    # pricing: 2·Σ 0.5^(k/14), k = 0..7 = 13.54 at day 7; awareness refreshed at day 7 → 25
    events = [identify(at(0, 9)), *awareness(25, at(0, 10))]
    events += [ev("web.pricing_view", at(d, 11)) for d in range(7)]
    events += [ev("email.click", at(7, 10), properties={"message_id": f"n{i}"}) for i in range(3)]
    events += [ev("web.page_view", at(7, 10)) for _ in range(5)]
    events += [ev("web.pricing_view", at(7, 11))]
    run = fold(model, events)
    assert all(e.tags == ("early_pricing",) for e in run.ledger if e.type == "web.pricing_view")
    assert run.moves() == [("anonymous", "lead", "identify")]
    assert snapshot(run.state, model)["engagement"] == pytest.approx(
        25 + 2 * sum(0.5 ** (k / 14) for k in range(8))
    )
    run.feed(ev("webinar.registered", at(7, 12), properties={"webinar_id": "w"}))
    assert run.moves()[-1] == ("lead", "mql", "score")


def test_handoff_with_three_bant_true(model: Model) -> None:
    when = at(0, 10)
    lead = identify(at(0, 9), "A", budget_usd=20_000, need=True)  # B, A (vp), N → 3 true
    run = fold(model, [lead, *awareness(15, when), ev("trial.signup", when)])
    assert run.moves() == [
        ("anonymous", "lead", "identify"),
        ("lead", "mql", "score"),
        ("mql", "sales_ready", "handoff"),
    ]
    first, second = run.transitions[1:]
    assert first.at == second.at == t_of(0, 10)
    assert (first.route, first.task) == (None, None)
    assert (second.route, second.priority, second.sla, second.task) == ("ae", "P2", "P1D", None)
    assert second.bant == {"budget": True, "authority": True, "need": True, "timeline": None}
    assert [t.seq for t in run.transitions] == [1, 2, 3]


def test_sql_after_acceptance_when_bant_holds(model: Model) -> None:
    when = at(0, 10)
    run = fold(
        model, [identify(at(0, 9), "A", need=True), *awareness(15, when), ev("trial.signup", when)]
    )
    assert run.state.stage == "mql"
    run.feed(ev("sales.accepted", at(1)))  # Need, Authority, but Timeline unknown
    assert run.state.stage == "mql" and run.state.accepted
    assert next_tick_at(run.state, model) is None  # accepted leads do not count ticks
    run.feed(ev("profile.update", at(2), traits={"timeline_months": 3}))
    assert run.moves()[-1] == ("mql", "sql", "accepted")
    assert run.transitions[-1].at == t_of(2)


@pytest.mark.parametrize(
    ("grade", "route"),
    [
        ("A", ("ae", "P1", "PT1H")),
        ("B", ("ae", "P1", "PT1H")),
        ("C", ("sdr", "P2", "PT4H")),
        ("D", ("self_serve", "P3", "P1D")),
    ],
)
def test_fast_lane_routes_by_grade(model: Model, grade: str, route: tuple[str, ...]) -> None:
    run = fold(model, [identify(at(0), grade), ev("form.contact_sales", at(1), eid="ask")])
    t = run.transitions[-1]
    assert (t.from_stage, t.to_stage, t.reason) == ("lead", "sales_ready", "fast_lane")
    assert (t.route, t.priority, t.sla) == route
    assert t.trigger_event_ids == ("ask",)


@pytest.mark.parametrize("start", ["anonymous", "lead", "mql", "nurture"])
def test_fast_lane_from(model: Model, start: str) -> None:
    run = fold(model, [override(start, at(0)), ev("meeting.requested", at(1))])
    assert run.moves()[-1] == (start, "sales_ready", "fast_lane")


@pytest.mark.parametrize("start", ["sales_ready", "sql", "opportunity", "customer"])
def test_fast_lane_does_not_move_sales_stages(model: Model, start: str) -> None:
    run = fold(model, [override(start, at(0)), ev("chat.sales_request", at(1))])
    assert run.moves() == [("anonymous", start, "manual_override")]


def test_fast_lane_even_when_suppressed_and_without_cooldown(model: Model) -> None:
    run = fold(
        model,
        [
            identify(at(0)),
            ev("sales.demo_requested", at(1)),
            ev("sales.rejected", at(1, 1), properties={"reason": "not_ready"}),
            ev("sales.demo_requested", at(2)),
        ],
    )  # capped (1 per 7 d), still moves
    assert run.ledger[-1].suppressed == "freq_cap"
    assert run.moves()[-2:] == [
        ("sales_ready", "nurture", "not_ready"),
        ("nurture", "sales_ready", "fast_lane"),
    ]


def test_disqualified_hand_raiser_gets_auto_reply_only(model: Model) -> None:
    run = fold(model, [identify(at(0), "A", industry="competitor"), ev("meeting.requested", at(1))])
    assert run.moves() == [
        ("anonymous", "disqualified", "fit"),
        ("disqualified", "disqualified", "fast_lane"),
    ]
    t = run.transitions[-1]
    assert (t.route, t.priority, t.sla) == ("auto_reply", "P3", None)
    assert run.state.stage == "disqualified"


def mql_at_day0(model: Model) -> Run:
    # fit A; at day 0 10:00: 2 e-books (16, hl 30) + trial (20, hl 30) = 36 → MQL
    when = at(0, 10)
    return fold(
        model,
        [
            identify(at(0, 9)),
            ev("content.ebook_download", when, properties={"asset_id": "a1"}),
            ev("content.ebook_download", when, properties={"asset_id": "a2"}),
            ev("trial.signup", when),
        ],
    )


def test_hysteresis_three_low_ticks(model: Model) -> None:
    # engagement(Δ) = 36·0.5^(Δ/30), Δ = days since day 0 10:00.
    # tick day 25 00:00: Δ = 24.583 → 20.40 (≥ 20, counter 0)
    # tick day 26: Δ = 25.583 → 19.93 (< 20: 1); day 27: 19.48 (2); day 28: 19.03 (3 → nurture)
    run = mql_at_day0(model)
    assert run.state.stage == "mql"
    assert next_tick_at(run.state, model) == t_of(1)  # first midnight after the MQL instant
    assert tick(run.state, t_of(25), model).transitions == []
    assert run.state.low_ticks == 0
    assert tick(run.state, t_of(27, 23, 59), model).transitions == []
    assert run.state.low_ticks == 2
    (t,) = tick(run.state, t_of(28), model).transitions  # up to and including 28 00:00
    assert (t.from_stage, t.to_stage, t.reason, t.at) == ("mql", "nurture", "decayed", t_of(28))
    assert t.engagement == pytest.approx(36 * 0.5 ** ((28 - 10 / 24) / 30))
    assert run.state.recycled_at is not None
    assert next_tick_at(run.state, model) is None


def test_hysteresis_counter_resets(model: Model) -> None:
    run = mql_at_day0(model)
    tick(run.state, t_of(26), model)
    assert run.state.low_ticks == 1
    # an event between ticks never touches the counter
    run.feed(ev("webinar.attended", at(26, 12), properties={"webinar_id": "w"}))
    assert run.state.low_ticks == 1
    # tick day 27: 19.48 + 10·0.5^(0.5/45) = 29.40 ≥ 20 → reset
    tick(run.state, t_of(27), model)
    assert run.state.low_ticks == 0
    assert run.state.stage == "mql"


def test_event_stamped_at_the_tick_is_applied_before_it(model: Model) -> None:
    run = mql_at_day0(model)
    tick(run.state, t_of(25), model)
    run.feed(ev("webinar.attended", at(26), properties={"webinar_id": "w"}))  # exactly 00:00
    assert run.state.low_ticks == 0  # the day-26 tick has not fired yet
    tick(run.state, t_of(26), model)
    assert run.state.low_ticks == 0  # 19.93 + 10 ≥ 20
    run2 = mql_at_day0(model)
    tick(run2.state, t_of(26), model)
    assert run2.state.low_ticks == 1


def test_ticks_fire_before_a_later_event_and_late_events_fire_none(model: Model) -> None:
    run = mql_at_day0(model)
    run.feed(ev("web.page_view", at(28, 0, 0, 1)))  # fires ticks 1..28 first
    assert run.moves()[-1] == ("mql", "nurture", "decayed")
    assert run.transitions[-1].at == t_of(28)
    run2 = mql_at_day0(model)
    run2.feed(ev("web.page_view", at(20, 10)))
    pending = run2.state.next_tick
    run2.feed(ev("web.page_view", at(10, 10)))  # late: no tick
    assert run2.state.next_tick == pending == round(t_of(21) * 86_400_000_000)


def test_only_ticks_after_the_mql_instant_count(model: Model) -> None:
    when = at(5)  # MQL exactly at midnight: that midnight's tick does not count
    run = fold(model, [identify(at(4)), *awareness(15, when), ev("trial.signup", when)])
    assert run.state.stage == "mql"
    assert next_tick_at(run.state, model) == t_of(6)


def test_tick_midnight_in_model_time_zone() -> None:
    model = model_with({"timezone": "Europe/Berlin"})
    when = at(0, 10)
    run = fold(model, [identify(at(0, 9)), *awareness(15, when), ev("trial.signup", when)])
    assert next_tick_at(run.state, model) == t_of(0, 23)  # 00:00 Berlin = 23:00Z


def test_nurture_cooldown_seven_days(model: Model) -> None:
    run = mql_at_day0(model)
    tick(run.state, t_of(28), model)
    assert run.state.stage == "nurture"
    # day 34 12:00: old 36·0.5^(34.083/30) = 16.4 + webinar 10 + case study 8 + activation 10
    # + cart 10 = 54.4 ≥ 35 with fresh mid-funnel touches, but only 6.5 d since the recycle
    when = at(34, 12)
    run.feed(
        ev("webinar.attended", when, properties={"webinar_id": "w"}),
        ev("content.case_study_download", when, properties={"asset_id": "c"}),
        ev("product.activation", when),
        ev("cart.abandoned", when),
    )
    assert run.state.stage == "nurture"
    run.feed(ev("web.page_view", at(34, 23, 59, 59)))
    assert run.state.stage == "nurture"
    run.feed(ev("web.page_view", at(35)))  # exactly 7 d after day 28 00:00
    assert run.moves()[-1] == ("nurture", "mql", "score")
    assert run.transitions[-1].at == t_of(35)


def test_recycled_lead_needs_a_mid_funnel_touch_after_the_recycle() -> None:
    model = model_with({"stages/hysteresis/below": 1000, "stages/escalation": None})  # low ticks
    when = at(0, 10)
    run = fold(
        model,
        [
            identify(at(0, 9)),
            ev("content.ebook_download", when, properties={"asset_id": "a1"}),
            ev("content.ebook_download", when, properties={"asset_id": "a2"}),
            ev("webinar.attended", when, properties={"webinar_id": "w"}),
            ev("trial.signup", when),
        ],
    )  # 16 + 10 + 20 = 46
    (t,) = tick(run.state, t_of(3), model).transitions  # ticks day 1, 2, 3 → nurture
    assert (t.to_stage, t.reason, t.at) == ("nurture", "decayed", t_of(3))
    run.feed(ev("web.page_view", at(10, 11)))  # ≥ 35 still, 7 d passed, but no new touch
    assert run.state.stage == "nurture"
    run.feed(ev("web.product_page_view", at(10, 12)))
    assert run.moves()[-1] == ("nurture", "mql", "score")


@pytest.mark.parametrize(
    ("start", "type_", "reason", "expected"),
    [
        ("mql", "sales.rejected", "not_ready", ("nurture", "not_ready")),
        ("sales_ready", "sales.rejected", "no_budget", ("nurture", "no_budget")),
        ("sql", "sales.rejected", "no_need", ("nurture", "no_need")),
        ("sql", "sales.rejected", "no_timeline", ("nurture", "no_timeline")),
        ("sql", "sales.rejected", None, ("nurture", "rejected")),
        ("lead", "sales.rejected", "not_ready", None),
        ("mql", "sales.no_decision", None, ("nurture", "no_decision")),
        ("lead", "sales.no_decision", None, None),
        ("lead", "sales.rejected", "spam", ("disqualified", "spam")),
        ("sql", "sales.rejected", "competitor", ("disqualified", "competitor")),
        ("opportunity", "sales.rejected", "student", ("disqualified", "student")),
        ("sql", "opportunity.created", None, ("opportunity", "opportunity_created")),
        ("mql", "opportunity.created", None, None),
        ("opportunity", "opportunity.won", None, ("customer", "won")),
        ("sql", "opportunity.won", None, ("customer", "won")),
        ("opportunity", "opportunity.lost", "price", ("nurture", "price")),
        ("opportunity", "opportunity.lost", None, ("nurture", "lost")),
        ("customer", "opportunity.lost", None, None),
        ("disqualified", "sales.rejected", "spam", None),
    ],
)
def test_sales_outcomes(
    model: Model, start: str, type_: str, reason: str | None, expected: tuple[str, str] | None
) -> None:
    props = {"reason": reason} if reason else {}
    run = fold(model, [override(start, at(0)), ev(type_, at(1), properties=props)])
    moves = run.moves()[1:]
    if expected is None:
        assert moves == []
    else:
        assert moves == [(start, *expected)]
        assert run.transitions[-1].at == t_of(1)


def test_accepted_flag_set_and_cleared(model: Model) -> None:
    run = fold(model, [override("sales_ready", at(0)), ev("sales.accepted", at(1))])
    assert run.state.accepted and run.state.stage == "sales_ready"  # BANT unknown: stays
    run.feed(ev("sales.rejected", at(2), properties={"reason": "not_ready"}))
    assert not run.state.accepted and run.state.stage == "nurture"


def test_accepted_with_bant_moves_to_sql(model: Model) -> None:
    run = fold(
        model,
        [
            identify(at(0), "A", need=True, timeline_months=3),
            override("sales_ready", at(0, 1)),
            ev("sales.accepted", at(1)),
        ],
    )
    assert run.moves()[-1] == ("sales_ready", "sql", "accepted")


def test_disqualified_by_fit_and_manual_override(model: Model) -> None:
    when = at(1, 10)
    run = fold(model, [identify(at(0), "A", country="SY")])
    assert run.moves() == [("anonymous", "disqualified", "fit")]
    assert run.state.fit == -100
    run.feed(*awareness(25, when), ev("trial.signup", when))  # scores but never MQLs
    assert run.state.stage == "disqualified"
    run.feed(override("lead", at(2)))
    assert run.moves()[-1] == ("disqualified", "lead", "manual_override")
    run.feed(ev("web.page_view", at(3)))  # fit unchanged: the override holds
    assert run.state.stage == "lead"


def test_low_fit_by_disposable_email_disqualifies(model: Model) -> None:
    # disposable -50 → fit -50 ≤ -50
    run = fold(model, [ev("identify", at(0), traits={"email_type": "disposable"})])
    assert run.moves() == [("anonymous", "disqualified", "fit")]


def test_manual_override_needs_a_known_stage() -> None:
    from stream.scoring import EventError

    with pytest.raises(EventError, match=r"properties\.stage"):
        ev("manual.override", at(0), properties={"stage": "vip"})
