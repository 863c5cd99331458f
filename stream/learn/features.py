"""What the engine knew about each lead when the model decided about it: the learning sample.

A lead's *decision* is the evaluation of the MQL rule that mattered: its first handoff by
score (the state right after the event that crossed the threshold), or, for a lead the model
never handed over, the eligible evaluation (stage lead or nurture) where its engagement came
closest — its peak — before sales said anything about it. Leads that asked for sales (the fast
lane) are left out: no threshold decided about them, so their outcome says nothing about
points. Outcomes are what sales did with the lead at any time (`accepted`, `sql`, `won`).

The features are the engine's own numbers at that instant, from the lead's state:
- per event type, its decayed sum clamped to the type cap, in *units* of the type's points
  (an early pricing view counts 0.25): a candidate with other points and caps scaled alike
  has exactly points × units per type, so a weight per unit is a weight per point;
- per fit attribute value (or employee range) of the model's table, 1 when the profile has it;
- the engagement, fit and grade the current model computed.

The history is driven through the worker's pipeline exactly as `leadstream replay` drives it
(`stream.pipeline.replay.replay_lines`, one partition, in-memory tables), with the pipeline's
`on_state` hook to see each lead's state after each event: `replay_lines` hands out
transitions and final states only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from stream.pipeline.replay import ReplayInputs, replay_pipeline
from stream.reports.errors import ReportError
from stream.reports.history import History
from stream.reports.review import OUTCOME_TYPES
from stream.scoring import events as ev
from stream.scoring.events import Event, t_to_us, us_to_t
from stream.scoring.fit import grade, normalize
from stream.scoring.identity import is_visitor
from stream.scoring.model import FitAttribute, Model
from stream.scoring.rules import engagement_of, group_values, type_values
from stream.scoring.state import LeadState

OUTCOMES = ("accepted", "sql", "won")
HANDOFF_STAGES = frozenset({"mql", "sales_ready"})


@dataclass
class Decision:
    """One lead at its decision: the features and the current model's own numbers."""

    lead_id: str
    t: float
    """When (model days): the handoff instant, or the lead's clock at its peak."""
    handed: bool
    """The current model handed it over by score."""
    engagement: float
    fit: float
    grade: str
    units: dict[str, float]
    """Event type -> decayed, type-capped sum in units of the type's points."""
    groups: dict[str, float]
    attributes: tuple[str, ...]
    """The fit table entries the profile hits (`seniority=vp`, `employees=201-1000`)."""


@dataclass
class LeadOutcome:
    accepted: bool = False
    sql: bool = False
    won: bool = False


@dataclass
class Sample:
    """Every lead judged, with its outcomes; counts of what was read."""

    decisions: list[Decision]
    outcomes: dict[str, LeadOutcome]
    events: int = 0
    leads: int = 0
    fast_lane: int = 0
    """Leads left out because their first handoff was the fast lane."""
    never_eligible: int = 0
    """Identified leads with no eligible evaluation before sales answered (left out)."""
    feature_names: list[str] = field(default_factory=list)

    def label(self, decision: Decision, outcome: str) -> bool:
        found = self.outcomes.get(decision.lead_id)
        return bool(found and getattr(found, outcome))


def attribute_keys(model: Model) -> list[str]:
    """Every fit table entry as a feature name, in the model's order (overrides excluded:
    they set fit outright, nothing to weigh)."""
    keys: list[str] = []
    for attr in model.fit_attributes:
        if attr.ranges:
            keys.extend(f"{attr.name}={_range(low, high)}" for low, high, _ in attr.ranges)
        else:
            keys.extend(f"{attr.name}={value}" for value in attr.points)
    return keys


def _range(low: int, high: int | None) -> str:
    return f"{low}+" if high is None else f"{low}-{high}"


def _hit(attr: FitAttribute, value: Any) -> str | None:
    """The table entry one profile value hits (the lookup of `stream.scoring.fit`)."""
    if value is None:
        return None
    if attr.ranges:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        for low, high, _ in attr.ranges:
            if value >= low and (high is None or value <= high):
                return f"{attr.name}={_range(low, high)}"
        return None
    key = normalize(value)
    if key is None or key in attr.override or key not in attr.points:
        return None
    return f"{attr.name}={key}"


def attributes_of(profile: Mapping[str, Any], model: Model) -> tuple[str, ...]:
    hits = (_hit(attr, profile.get(attr.name)) for attr in model.fit_attributes)
    return tuple(h for h in hits if h is not None)


def decision_of(state: LeadState, model: Model, handed: bool, at_us: int | None = None) -> Decision:
    """The features of a lead's state at `at_us` (default its clock)."""
    at = at_us if at_us is not None else state.clock or 0
    types = type_values(state, model, at)
    groups = group_values(types, model)
    units = {
        name: value / model.types[name].points
        for name, value in types.items()
        if model.types[name].points != 0 and value != 0
    }
    return Decision(
        state.lead_id,
        us_to_t(at),
        handed,
        engagement_of(groups, model),
        state.fit,
        grade(state.fit, model),
        units,
        groups,
        attributes_of(state.profile, model),
    )


class _Watch:
    """The `on_state` hook: each lead's latest decision candidate, peak and outcomes."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.eligible = model.rules.mql_from
        self.first_call = True
        self.outcome_type: str | None = None
        self.last: dict[str, LeadState] = {}
        self.peak: dict[str, Decision] = {}
        self.closed: set[str] = set()
        self.frozen: dict[str, Decision] = {}
        self.outcomes: dict[str, LeadOutcome] = {}

    def begin(self, event_type: str) -> None:
        self.first_call = True
        self.outcome_type = event_type if event_type in OUTCOME_TYPES else None

    def __call__(self, lead_id: str, state: LeadState) -> None:
        first, self.first_call = self.first_call, False
        if is_visitor(lead_id):
            return
        self.last[lead_id] = state
        if first and self.outcome_type is not None:  # the record's own lead comes first
            self.closed.add(lead_id)
            found = self.outcomes.setdefault(lead_id, LeadOutcome())
            found.accepted |= self.outcome_type == ev.SALES_ACCEPTED
            found.won |= self.outcome_type == ev.OPPORTUNITY_WON
            return
        if lead_id in self.closed or lead_id in self.frozen or state.stage not in self.eligible:
            return
        if state.clock is None:
            return
        decision = decision_of(state, self.model, handed=False)
        best = self.peak.get(lead_id)
        if best is None or decision.engagement > best.engagement:
            self.peak[lead_id] = decision


def collect(history: History, model: Model, secret: str = "") -> Sample:
    """Drive the history through the pipeline and collect every lead's decision."""
    watch = _Watch(model)
    leads: dict[str, LeadState] = {}
    pipeline = replay_pipeline(model, leads, secret=secret, on_state=watch)
    inputs = ReplayInputs()
    fast_lane: set[str] = set()
    events = 0
    for number, line in enumerate(history.lines, 1):
        body = orjson.loads(line)
        event = Event.from_dict(body)
        watch.begin(model.canonical(event.type))
        emit = pipeline.process(inputs.record(number, body, event))
        if emit.deadletters:
            error = dict(emit.deadletters[0][2]).get("error", b"").decode()
            raise ReportError(f"{history.at(number)}: the replay refused the event: {error}")
        events += 1
        for tr in emit.transitions:
            lead = tr.lead_id
            if is_visitor(lead):
                continue
            if tr.to_stage == "sql":
                watch.outcomes.setdefault(lead, LeadOutcome()).sql = True
            if lead in watch.frozen or lead in watch.closed or lead in fast_lane:
                continue  # decided already, or sales answered first: its peak before counts
            if tr.to_stage not in HANDOFF_STAGES:
                continue
            if tr.from_stage == tr.to_stage or tr.reason == "sla_breached":
                continue
            if tr.reason == "fast_lane":
                fast_lane.add(lead)
                continue
            state = watch.last.get(lead)
            if state is not None:
                watch.frozen[lead] = decision_of(state, model, True, t_to_us(tr.at))
        if number % 2000 == 0:
            pipeline.write_landing(pipeline.take_landing())
    decisions: list[Decision] = []
    never = 0
    for lead in watch.last:
        if lead in fast_lane:
            continue
        found = watch.frozen.get(lead) or watch.peak.get(lead)
        if found is None:
            never += 1
            continue
        decisions.append(found)
    decisions.sort(key=lambda d: (d.t, d.lead_id))
    names = sorted({name for d in decisions for name in d.units}, key=list(model.types).index)
    return Sample(
        decisions,
        watch.outcomes,
        events=events,
        leads=len(watch.last),
        fast_lane=len(fast_lane),
        never_eligible=never,
        feature_names=names,
    )


def counts(sample: Sample, outcome: str) -> tuple[int, int]:
    """(leads with the outcome, leads without) among those judged."""
    positive = sum(1 for d in sample.decisions if sample.label(d, outcome))
    return positive, len(sample.decisions) - positive


def engaged_types(decisions: Iterable[Decision]) -> set[str]:
    return {name for d in decisions for name in d.units}
