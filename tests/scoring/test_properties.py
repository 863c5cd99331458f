"""Hypothesis properties of the engine, and agreement with a naive reference implementation.

The reference below re-implements scoring-model.md sections 3–5 the plain way — every ledger
entry kept forever, sums recomputed from scratch — so the engine's bounded state (decayed sums,
pruned window history, capped counters) is checked against the text itself: identical ledger
decisions and scores within ±0.01.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.pipeline.replay import replay_lines
from stream.scoring import (
    Event,
    LeadState,
    Model,
    apply,
    default_model,
    new_state,
    snapshot,
    tick,
)
from stream.scoring.events import US_PER_DAY, format_us, us_to_t

from .helpers import BASE_US, TRAITS

MODEL = default_model()
D = US_PER_DAY
SCORED_TYPES = sorted(t for t, r in MODEL.types.items() if not r.derived)
TYPES = [*SCORED_TYPES, *MODEL.aliases, "identify", "sales.accepted", "app.unknown"]
POSITIVE = [t for t in SCORED_TYPES if MODEL.types[t].points > 0]


@dataclass
class Ref:
    type: str
    t: int
    base: float
    key: str | None
    scored: bool
    tags: tuple[str, ...]


def reference(events: list[Event], model: Model) -> list[Ref]:
    """Section 4 step by step over the whole history (no bounds, no summaries)."""
    ledger: list[Ref] = []
    j = model.journey

    def process(name: str, t: int, key: str | None) -> Ref:
        rule = model.types[name]
        dup = key is not None and any(x.type == name and x.key == key for x in ledger)
        capped = False
        if not dup and rule.freq is not None:
            if rule.freq.window_us is None:
                same = [x for x in ledger if x.scored and x.type == name and x.t // D == t // D]
            else:
                low = t - rule.freq.window_us
                same = [x for x in ledger if x.scored and x.type == name and low < x.t <= t]
            capped = len(same) >= rule.freq.count
        base, tags = float(rule.points), ()
        if not dup and not capped and name == j.early_type:
            priors = [x for x in ledger if x.scored and model.types[x.type].group != "negative"]
            low = t - j.early_window_us
            other = [
                x
                for x in ledger
                if x.scored
                and x.type != name
                and low < x.t <= t
                and model.types[x.type].group == "consideration"
            ]
            if len(priors) < 3 or not other:
                base, tags = base * 0.25, ("early_pricing",)
        entry = Ref(name, t, base, key, not (dup or capped), tags)
        ledger.append(entry)
        return entry

    for event in events:
        name = model.canonical(event.type)
        rule = model.types.get(name)
        if rule is None or rule.derived:
            continue
        if name == "email.open" and event.properties.get("machine_open") is True:
            continue
        key = event.properties.get(rule.dedupe_key) if rule.dedupe_key else None
        entry = process(name, event.t_us, None if key is None else str(key))
        if entry.scored and name == j.streak_trigger:
            low = event.t_us - j.streak_window_us
            days = {
                x.t // D for x in ledger if x.scored and x.type == name and low < x.t <= event.t_us
            }
            if len(days) >= 2:
                process(j.streak_emit, event.t_us, None)
    return ledger


def reference_scores(ledger: list[Ref], model: Model, at_us: int) -> tuple[float, dict[str, float]]:
    types: dict[str, float] = {}
    for x in ledger:
        if x.scored and x.t <= at_us:
            hl = model.types[x.type].half_life
            value = x.base * (0.5 ** ((at_us - x.t) / D / hl) if hl else 1.0)
            types[x.type] = types.get(x.type, 0.0) + value
    groups: dict[str, float] = {}
    for name, value in types.items():
        cap = model.types[name].cap
        if cap is not None:
            value = min(value, cap) if cap > 0 else max(value, cap)
        types[name] = value
        group = model.types[name].group
        groups[group] = groups.get(group, 0.0) + value
    total = 0.0
    for group, value in groups.items():
        cap = model.groups[group]
        total += value if cap is None else (min(value, cap) if cap > 0 else max(value, cap))
    return max(-100.0, min(100.0, total)), types


@st.composite
def event_lists(draw: Any, types: list[str] = TYPES, max_size: int = 40) -> list[Event]:
    n = draw(st.integers(min_value=1, max_value=max_size))
    now = BASE_US
    events = []
    for i in range(n):
        now += (
            draw(
                st.sampled_from(
                    [0, 60, 3_600, 6 * 3_600, 86_400, 3 * 86_400, 7 * 86_400, 14 * 86_400]
                )
            )
            * 1_000_000
        )
        late = draw(st.sampled_from([0, 0, 0, 0, 3_600, 86_400, 2 * 86_400])) * 1_000_000
        type_ = draw(st.sampled_from(types))
        props: dict[str, Any] = {}
        for field in ("message_id", "asset_id", "webinar_id"):
            if draw(st.booleans()):
                props[field] = draw(st.sampled_from(["k1", "k2", "k3", "k4"]))
        if type_ == "email.open" and draw(st.integers(0, 9)) == 0:
            props["machine_open"] = True
        d: dict[str, Any] = {
            "event_id": f"e{i}",
            "type": type_,
            "occurred_at": format_us(now - late),
            "lead_id": "L1",
            "properties": props,
        }
        if type_ == "identify" or draw(st.integers(0, 7)) == 0:
            d["traits"] = dict(TRAITS[draw(st.sampled_from("ABCD"))])
            if draw(st.booleans()):
                d["traits"].update(need=True, timeline_months=3, budget_usd=50_000)
        events.append(Event.from_dict(d))
    return events


COMMON = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run(
    events: list[Event], model: Model = MODEL
) -> tuple[LeadState, list[dict[str, Any]], list[Any]]:
    state = new_state("L1")
    transitions: list[dict[str, Any]] = []
    ledger: list[Any] = []
    for event in events:
        out = apply(state, event, model)
        transitions.extend(t.to_dict() for t in out.transitions)
        ledger.extend(out.ledger)
    return state, transitions, ledger


@COMMON
@given(event_lists(), st.integers(min_value=0, max_value=400))
def test_engine_agrees_with_the_reference(events: list[Event], later_days: int) -> None:
    state, _, ledger = run(events)
    ref = reference(events, MODEL)
    assert [(e.type, e.suppressed is None, e.base_points, e.tags) for e in ledger] == [
        (x.type, x.scored, x.base, x.tags) for x in ref
    ]
    assert state.clock is not None
    for at_us in (state.clock, state.clock + later_days * D):
        snap = snapshot(state, MODEL, us_to_t(at_us))
        expected, types = reference_scores(ref, MODEL, at_us)
        assert abs(snap["engagement"] - expected) <= 0.01
        for name, value in types.items():
            assert abs(snap["types"].get(name, 0.0) - value) <= 0.01


@COMMON
@given(event_lists(), st.lists(st.integers(min_value=0, max_value=200 * 24), max_size=5))
def test_caps_never_exceeded(events: list[Event], hours: list[int]) -> None:
    state, _, _ = run(events)
    assert state.clock is not None
    for h in [0, *hours]:
        snap = snapshot(state, MODEL, us_to_t(state.clock + h * 3_600_000_000))
        for name, value in snap["types"].items():
            cap = MODEL.types[name].cap
            assert cap is None or (value <= cap + 1e-9 if cap > 0 else value >= cap - 1e-9)
        for group, value in snap["groups"].items():
            cap = MODEL.groups[group]
            assert cap is None or value <= cap + 1e-9
        assert -100 <= snap["engagement"] <= 100


@COMMON
@given(event_lists(types=POSITIVE), st.lists(st.integers(0, 60 * 24), min_size=2, max_size=6))
def test_decay_monotone_between_events(events: list[Event], hours: list[int]) -> None:
    state, _, _ = run(events)
    assert state.clock is not None
    values = [
        snapshot(state, MODEL, us_to_t(state.clock + h * 3_600_000_000))["engagement"]
        for h in sorted(hours)
    ]
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(values))


@COMMON
@given(event_lists(), st.data())
def test_reapplying_an_event_is_a_noop(events: list[Event], data: st.DataObject) -> None:
    state, _, _ = run(events)
    before = state.encode()
    assert state.clock is not None
    # remembered for `seen_event_days` of the lead's clock (the latest event is always inside)
    recent = [e for e in events if e.t_us >= state.clock - MODEL.seen_us]
    again = data.draw(st.sampled_from(recent))
    out = apply(state, again, MODEL)
    assert not out.applied and out.transitions == [] and out.ledger == []
    assert state.encode() == before


@COMMON
@given(event_lists())
def test_codec_round_trips_at_every_step(events: list[Event]) -> None:
    state = new_state("L1")
    for event in events:
        apply(state, event, MODEL)
        data = state.encode()
        assert LeadState.decode(data) == state
        assert LeadState.decode(data).encode() == data


@COMMON
@given(event_lists(), st.data())
def test_stop_encode_resume_equals_one_pass(events: list[Event], data: st.DataObject) -> None:
    whole, whole_transitions, _ = run(events)
    cut = data.draw(st.integers(min_value=0, max_value=len(events)))
    state = new_state("L1")
    transitions: list[dict[str, Any]] = []
    for i, event in enumerate(events):
        if i == cut:
            state = LeadState.decode(state.encode())
        transitions.extend(t.to_dict() for t in apply(state, event, MODEL).transitions)
    assert transitions == whole_transitions
    assert state.encode() == whole.encode()


@COMMON
@given(event_lists(max_size=25), event_lists(max_size=25))
def test_replay_equals_manual_fold(first: list[Event], second: list[Event]) -> None:
    def relabel(events: list[Event], lead: str) -> list[Event]:
        return [
            Event.from_dict({**e.to_dict(), "lead_id": lead, "event_id": lead + e.event_id})
            for e in events
        ]

    a, b = relabel(first, "A"), relabel(second, "B")
    merged = sorted([*a, *b], key=lambda e: e.t_us)  # interleave the two leads
    lines = [orjson.dumps(e.to_dict()).decode() for e in merged]
    out = list(replay_lines(lines, MODEL, None))
    end = us_to_t(max(e.t_us for e in merged))
    expected_leads = []
    expected_transitions = []
    for lead in dict.fromkeys(e.lead_id for e in merged):
        state = new_state(str(lead))
        for event in (e for e in merged if e.lead_id == lead):
            expected_transitions.extend(t.to_dict() for t in apply(state, event, MODEL).transitions)
        expected_transitions.extend(t.to_dict() for t in tick(state, end, MODEL).transitions)
        expected_leads.append({"kind": "lead", **snapshot(state, MODEL, end)})
    assert [o for o in out if o["kind"] == "lead"] == expected_leads
    key = lambda d: (d["lead_id"], d["seq"])  # noqa: E731
    assert sorted((o for o in out if o["kind"] == "transition"), key=key) == sorted(
        expected_transitions, key=key
    )
