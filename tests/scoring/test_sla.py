"""SLA timers: one escalation (reason sla_breached) when a handoff's SLA passes unanswered.

Times are hand-computed from BASE = 2026-01-05T00:00:00Z (day 0). The default model routes an
A/B hand-raiser to ae/P1/PT1H, a C one to sdr/P2/PT4H, an MQL without BANT to sdr/P2/P1D, and a
disqualified hand-raiser to auto_reply with no SLA; the timers need an escalation route, which
the tests switch on with `ESCALATION`.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.pipeline.replay import replay_lines
from stream.scoring import (
    Event,
    LeadState,
    Model,
    ModelError,
    apply,
    merge_states,
    new_state,
    next_tick_at,
    tick,
)
from stream.scoring.events import US_PER_DAY, parse_time, t_to_us, us_to_t
from stream.scoring.explain import Transition
from stream.scoring.model import sla_us
from stream.scoring.state import CODEC_VERSION

from .helpers import Run, at, ev, fold, identify, model_with, t_of
from .test_properties import COMMON, event_lists, run

REPO = Path(__file__).resolve().parents[2]
ESCALATION = {
    "route": "sales_manager",
    "priority": "P1",
    "sla": "PT1H",
    "task": "review_overdue_handoff",
}


@pytest.fixture(scope="module")
def sla_model() -> Model:
    return model_with({"stages/escalation": ESCALATION})


def hand_raiser(model: Model, grade: str = "A", hours: float = 10, **kw: float) -> Run:
    """Identified at day 0 09:00, asks for sales at day 0 `hours`:00 → sales_ready."""
    return fold(
        model, [identify(at(0, 9), grade), ev("meeting.requested", at(0, hours, **kw), eid="ask")]
    )


def mql_at_10(model: Model) -> Run:
    """Grade A (BANT: Authority only); day 0 10:00: e-book 8 + clicks 6 + view 1 + trial 20 =
    35 ≥ 35 → mql, route sdr/P2/P1D, task qualify_bant."""
    when = at(0, 10)
    return fold(
        model,
        [
            identify(at(0, 9)),
            ev("content.ebook_download", when, properties={"asset_id": "a1"}),
            *[ev("email.click", when, properties={"message_id": f"m{i}"}) for i in range(2)],
            ev("web.page_view", when),
            ev("trial.signup", when, eid="trial"),
        ],
    )


def breaches(transitions: list[Transition]) -> list[Transition]:
    return [t for t in transitions if t.reason == "sla_breached"]


# grade → (handoff route, SLA, due instant as (day, hours)) for a hand-raiser at day 0 10:00
FAST_LANE = [
    ("A", ("ae", "P1", "PT1H"), (0, 11)),
    ("B", ("ae", "P1", "PT1H"), (0, 11)),
    ("C", ("sdr", "P2", "PT4H"), (0, 14)),
    ("D", ("self_serve", "P3", "P1D"), (1, 10)),
]


@pytest.mark.parametrize(("grade", "route", "due"), FAST_LANE)
def test_fast_lane_breach_exactly_at_the_due_instant(
    sla_model: Model, grade: str, route: tuple[str, ...], due: tuple[int, int]
) -> None:
    run = hand_raiser(sla_model, grade)
    handoff = run.transitions[-1]
    assert (handoff.route, handoff.priority, handoff.sla) == route
    assert next_tick_at(run.state, sla_model) == t_of(*due)
    day, hours = due
    assert tick(run.state, t_of(day, hours, -1), sla_model).transitions == []  # a minute early
    (breach,) = tick(run.state, t_of(*due), sla_model).transitions  # at the instant: fires
    assert breach.at == t_of(*due)
    assert (breach.from_stage, breach.to_stage, breach.reason) == (
        "sales_ready",
        "sales_ready",
        "sla_breached",
    )
    assert (breach.route, breach.priority, breach.sla, breach.task) == (
        "sales_manager",
        "P1",
        "PT1H",
        "review_overdue_handoff",
    )
    assert breach.trigger_event_ids == ("ask",)  # the handoff whose SLA passed
    assert breach.seq == handoff.seq + 1  # its own ce_id
    assert breach.grade == grade and breach.threshold is None
    # one breach per handoff: nothing more, whatever happens later
    assert next_tick_at(run.state, sla_model) is None
    assert tick(run.state, t_of(30), sla_model).transitions == []
    run.feed(ev("web.page_view", at(31)))
    assert breaches(run.transitions) == []
    # the lead stays where it is, in its queue: the escalation does not replace its route
    assert run.state.stage == "sales_ready"
    assert run.state.route == [*route, None]


def test_event_at_the_due_instant_is_applied_first(sla_model: Model) -> None:
    run = hand_raiser(sla_model)
    run.feed(ev("web.page_view", at(0, 11)))  # stamped exactly 11:00: applied before the timer
    assert breaches(run.transitions) == []
    assert next_tick_at(run.state, sla_model) == t_of(0, 11)
    run.feed(ev("web.page_view", at(0, 11, 0, 1)))  # 11:00:01 passes it: breach, then the event
    (breach,) = breaches(run.transitions)
    assert breach.at == t_of(0, 11)
    assert run.state.clock == run.state.last_event  # the event's time is the clock again


def test_answer_at_the_due_instant_prevents_the_breach(sla_model: Model) -> None:
    run = hand_raiser(sla_model)
    run.feed(ev("sales.accepted", at(0, 11)))  # exactly at the due instant: in time
    assert next_tick_at(run.state, sla_model) is None
    assert tick(run.state, t_of(5), sla_model).transitions == []


def test_answer_after_the_due_instant_comes_too_late(sla_model: Model) -> None:
    run = hand_raiser(sla_model)
    run.feed(ev("sales.accepted", at(0, 11, 5), eid="late-answer"))
    assert [(t.reason, t.at) for t in run.transitions[-1:]] == [("sla_breached", t_of(0, 11))]
    assert run.state.accepted


@pytest.mark.parametrize(
    ("answer", "stage"),
    [
        (("sales.accepted", {}), "sales_ready"),  # accepted, BANT incomplete: stays, no timer
        (("sales.rejected", {"reason": "not_ready"}), "nurture"),
        (("sales.rejected", {"reason": "spam"}), "disqualified"),
        (("sales.rejected", {}), "nurture"),
        (("sales.no_decision", {}), "nurture"),
    ],
)
def test_sales_answers_stop_the_timer(
    sla_model: Model, answer: tuple[str, dict[str, Any]], stage: str
) -> None:
    kind, properties = answer
    run = hand_raiser(sla_model)
    run.feed(ev(kind, at(0, 10, 30), properties=properties))
    assert run.state.stage == stage
    assert run.state.sla_due is None and next_tick_at(run.state, sla_model) is None
    assert tick(run.state, t_of(5), sla_model).transitions == []


def test_leaving_the_stage_stops_the_timer(sla_model: Model) -> None:
    run = hand_raiser(sla_model)
    run.feed(ev("manual.override", at(0, 10, 30), properties={"stage": "lead"}))
    assert run.state.sla_due is None
    assert tick(run.state, t_of(5), sla_model).transitions == []


def test_mql_qualify_handoff_breaches_after_one_day(sla_model: Model) -> None:
    run = mql_at_10(sla_model)
    mql = run.transitions[-1]
    assert (mql.to_stage, mql.route, mql.sla, mql.task) == ("mql", "sdr", "P1D", "qualify_bant")
    assert next_tick_at(run.state, sla_model) == t_of(1)  # the daily tick comes first
    assert tick(run.state, t_of(1, 9, 59), sla_model).transitions == []  # day 1 tick: ≥ 20
    assert next_tick_at(run.state, sla_model) == t_of(1, 10)
    (breach,) = tick(run.state, t_of(1, 10), sla_model).transitions
    assert (breach.from_stage, breach.to_stage, breach.at) == ("mql", "mql", t_of(1, 10))
    assert breach.trigger_event_ids == ("trial",)
    assert next_tick_at(run.state, sla_model) == t_of(2)  # daily ticks go on, the SLA is done


def test_newer_handoff_replaces_the_timer(sla_model: Model) -> None:
    run = mql_at_10(sla_model)  # sdr/P1D: due day 1 10:00
    run.feed(ev("meeting.requested", at(0, 12), eid="ask"))  # mql → sales_ready, ae/P1/PT1H
    assert run.moves()[-1] == ("mql", "sales_ready", "fast_lane")
    assert next_tick_at(run.state, sla_model) == t_of(0, 13)
    out = tick(run.state, t_of(10), sla_model).transitions
    assert [(t.reason, t.at, t.trigger_event_ids) for t in out] == [
        ("sla_breached", t_of(0, 13), ("ask",))
    ]


def test_disqualified_auto_reply_has_no_sla(sla_model: Model) -> None:
    run = fold(
        sla_model, [identify(at(0), "A", industry="competitor"), ev("meeting.requested", at(1))]
    )
    reply = run.transitions[-1]
    assert (reply.route, reply.sla) == ("auto_reply", None)
    assert next_tick_at(run.state, sla_model) is None
    assert tick(run.state, t_of(30), sla_model).transitions == []


def test_the_packaged_model_has_timers(model: Model) -> None:
    assert model.rules.escalation is not None
    assert next_tick_at(hand_raiser(model).state, model) is not None


def test_no_escalation_route_no_timers() -> None:
    model = model_with({"stages/escalation": None})
    run = hand_raiser(model)
    assert run.state.sla_due is None and next_tick_at(run.state, model) is None
    assert tick(run.state, t_of(5), model).transitions == []


def test_model_change_without_escalation_drops_a_pending_timer(sla_model: Model) -> None:
    model = model_with({"stages/escalation": None})
    run = hand_raiser(sla_model)
    assert tick(run.state, t_of(1), model).transitions == []
    assert run.state.sla_due is None


def test_handoff_after_acceptance_starts_no_timer(sla_model: Model) -> None:
    run = fold(sla_model, [identify(at(0)), ev("sales.accepted", at(0, 1))])
    run.feed(ev("meeting.requested", at(0, 2)))  # sales already owns the lead
    assert run.moves()[-1] == ("lead", "sales_ready", "fast_lane")
    assert run.state.sla_due is None


def test_due_instant_rounds_up_to_the_minute(sla_model: Model) -> None:
    run = hand_raiser(sla_model, seconds=20)  # 10:00:20 + PT1H = 11:00:20 → 11:01
    assert next_tick_at(run.state, sla_model) == t_of(0, 11, 1)
    assert tick(run.state, t_of(0, 11, 0.5), sla_model).transitions == []
    (breach,) = tick(run.state, t_of(0, 11, 1), sla_model).transitions
    assert breach.at == t_of(0, 11, 1)


def test_daily_tick_at_the_same_instant_goes_first(sla_model: Model) -> None:
    # qualify SLA PT14H: due day 1 00:00, the first daily tick; one low tick (< 100) recycles
    model = model_with(
        {
            "stages/escalation": ESCALATION,
            "stages/mql/handoff/qualify/sla": "PT14H",
            "stages/hysteresis/below": 100,
            "stages/hysteresis/consecutive_ticks": 1,
        }
    )
    run = mql_at_10(model)
    assert next_tick_at(run.state, model) == t_of(1)
    out = tick(run.state, t_of(1), model).transitions
    assert [(t.to_stage, t.reason) for t in out] == [("nurture", "decayed")]  # no breach


def test_breach_advances_the_clock(sla_model: Model) -> None:
    run = hand_raiser(sla_model)
    tick(run.state, t_of(0, 12), sla_model)  # breach at 11:00: the clock moves to 11:00
    assert run.state.clock == t_to_us(t_of(0, 11))
    # a rejection stamped 10:45 arriving now is late: decided at the clock, not before the breach
    run.feed(ev("sales.rejected", at(0, 10, 45), properties={"reason": "not_ready"}))
    assert (run.moves()[-1], run.transitions[-1].at) == (
        ("sales_ready", "nurture", "not_ready"),
        t_of(0, 11),
    )


def test_merge_keeps_the_known_leads_timer(sla_model: Model) -> None:
    known = hand_raiser(sla_model)  # due 11:00
    visitor = fold(sla_model, [ev("web.page_view", at(0, 10, 10), lead="V")], lead="V")
    out = merge_states(known.state, visitor.state, identify(at(0, 10, 20), eid="idf"), sla_model)
    assert out.transitions == []
    assert next_tick_at(known.state, sla_model) == t_of(0, 11)


def test_merge_keeps_the_hand_raises_own_timer(sla_model: Model) -> None:
    known = fold(sla_model, [identify(at(0, 9))])
    visitor = fold(sla_model, [ev("meeting.requested", at(0, 10), lead="V", eid="ask")], lead="V")
    assert visitor.state.sla_due is not None
    out = merge_states(known.state, visitor.state, identify(at(0, 10, 30), eid="idf"), sla_model)
    # One request, one deadline: the SLA of its route now (ae, 1 h) from the hand-raise (10:00),
    # not from the identify instant and not the 1 day of the visitor's grade D route.
    assert [(t.reason, t.trigger_event_ids) for t in out.transitions] == [
        ("identified", ("ask", "idf"))
    ]
    assert next_tick_at(known.state, sla_model) == t_of(0, 11)


def test_codec_keeps_the_timer_and_reads_version_1(sla_model: Model) -> None:
    run = hand_raiser(sla_model)
    data = run.state.encode()
    assert orjson.loads(data)[0] == CODEC_VERSION
    again = LeadState.decode(data)
    assert again == run.state
    assert (again.sla_due, again.sla_triggers) == (t_to_us(t_of(0, 11)), ["ask"])
    # a state written before SLA timers (codec 1: 24 fields) decodes with no timer
    old = orjson.loads(data)[:24]
    old[0] = 1
    old[22] = base64.b64encode(b"".join(d.to_bytes(8, "big") for d in run.state.seen)).decode()
    legacy = LeadState.decode(orjson.dumps(old))
    assert legacy.sla_due is None and legacy.sla_triggers == []
    assert legacy.seen.keys() == run.state.seen.keys()  # ids without days: kept from now on
    assert (legacy.stage, legacy.seq, legacy.route) == ("sales_ready", 2, run.state.route)


def test_stop_encode_resume_fires_the_same_breach(sla_model: Model) -> None:
    whole = hand_raiser(sla_model)
    resumed = LeadState.decode(whole.state.encode())
    later = ev("web.page_view", at(0, 12), eid="pv")
    a = apply(whole.state, later, sla_model).transitions
    b = apply(resumed, later, sla_model).transitions
    assert a == b and [t.reason for t in a] == ["sla_breached"]
    assert whole.state.encode() == resumed.encode()


def test_replay_prints_the_breach(sla_model: Model) -> None:
    events = [
        identify(at(0, 9), lead="R1"),
        ev("meeting.requested", at(0, 10), lead="R1", eid="ask"),
        ev("web.page_view", at(0, 10, 30), lead="R2"),
    ]
    lines = [orjson.dumps(e.to_dict()).decode() for e in events]
    out = list(replay_lines(lines, sla_model, at(0, 12)))
    validator = jsonschema_rs.validator_for(
        json.loads((REPO / "schemas" / "replay-output.schema.json").read_text())
    )
    for item in out:
        validator.validate(json.loads(json.dumps(item)))
    line = [o for o in out if o["kind"] == "transition"][-1]
    assert {k: line[k] for k in ("lead_id", "at", "from", "to", "reason", "route", "seq")} == {
        "lead_id": "R1",
        "at": "2026-01-05T11:00:00Z",
        "from": "sales_ready",
        "to": "sales_ready",
        "reason": "sla_breached",
        "route": "sales_manager",
        "seq": 3,
    }
    assert line["priority"] == "P1" and line["trigger_event_ids"] == ["ask"]
    # without --until the replay ends at the last event (10:30): the SLA has not passed yet
    short = list(replay_lines(lines, sla_model, None))
    assert all(o.get("reason") != "sla_breached" for o in short)


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("PT1H", 60), ("PT4H", 240), ("P1D", 1440), ("P1DT12H", 2160), ("PT90M", 90), ("P", None)],
)
def test_sla_durations(text: str, minutes: int | None) -> None:
    assert sla_us(text) == (None if minutes is None else minutes * 60_000_000)


@pytest.mark.parametrize("sla", ["PT", "PT0H"])
def test_empty_sla_is_refused(sla: str) -> None:
    with pytest.raises(ModelError, match=r"stages\.escalation\.sla.*empty or zero"):
        model_with({"stages/escalation": {**ESCALATION, "sla": sla}})


def test_escalation_is_checked_by_the_schema() -> None:
    with pytest.raises(ModelError, match=r"stages\.escalation"):
        model_with({"stages/escalation": {"route": "sales_manager"}})


def test_new_state_has_no_timer() -> None:
    assert new_state("L1").sla_due is None


SLA_MODEL = model_with({"stages/escalation": ESCALATION})


@COMMON
@given(event_lists(), st.data())
def test_stop_encode_resume_equals_one_pass_with_timers(
    events: list[Event], data: st.DataObject
) -> None:
    whole, whole_transitions, _ = run(events, SLA_MODEL)
    end = us_to_t(max(e.t_us for e in events) + 2 * US_PER_DAY)
    whole_transitions += [t.to_dict() for t in tick(whole, end, SLA_MODEL).transitions]
    cut = data.draw(st.integers(min_value=0, max_value=len(events)))
    state = new_state("L1")
    transitions: list[dict[str, Any]] = []
    for i, event in enumerate(events):
        if i == cut:
            state = LeadState.decode(state.encode())
        transitions.extend(t.to_dict() for t in apply(state, event, SLA_MODEL).transitions)
    transitions += [t.to_dict() for t in tick(state, end, SLA_MODEL).transitions]
    assert transitions == whole_transitions
    assert state.encode() == whole.encode()
    # every breach answers the latest handoff before it, once, no earlier than its SLA
    handoff: dict[str, Any] | None = None
    for t in transitions:
        if t["reason"] == "sla_breached":
            assert handoff is not None and t["trigger_event_ids"] == handoff["trigger_event_ids"]
            assert t["from"] == t["to"] == handoff["to"]
            due = parse_time(handoff["at"]) + (sla_us(handoff["sla"]) or 0)
            assert parse_time(t["at"]) == -(-due // 60_000_000) * 60_000_000
            handoff = None
        elif t["route"] is not None:
            handoff = t
