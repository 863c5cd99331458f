"""The stage machine: transitions, MQL/SQL rules, fast lane, sales outcomes, daily ticks and
SLA timers."""

from __future__ import annotations

from stream.scoring import events as ev
from stream.scoring.events import Event, us_to_t
from stream.scoring.explain import Transition, top_contributors
from stream.scoring.fit import bant, bant_true_count, grade, sql_ready
from stream.scoring.journey import mofu_guard
from stream.scoring.model import US_PER_MINUTE, Model, Route
from stream.scoring.rules import engagement_of, group_values, type_values
from stream.scoring.state import LeadState

# Stages that sales outcomes move back to nurture (scoring-model.md section 6).
SALES_STAGES = frozenset({"mql", "sales_ready", "sql"})
DEAL_STAGES = frozenset({"sql", "opportunity"})
SQL_FROM = frozenset({"mql", "sales_ready"})
# Sales' answers to a handoff: each stops its SLA timer.
SALES_ANSWERS = frozenset({ev.SALES_ACCEPTED, ev.SALES_REJECTED, ev.SALES_NO_DECISION})
SLA_BREACHED = "sla_breached"  # reason of the escalation a passed SLA emits
# Event types `event_rules` acts on whatever the model says (fast-lane types come from it).
EVENT_RULE_TYPES = frozenset(
    {
        *SALES_ANSWERS,
        ev.OPPORTUNITY_CREATED,
        ev.OPPORTUNITY_WON,
        ev.OPPORTUNITY_LOST,
    }
)


class Scores:
    """Scores of a lead at one instant, computed on first use (most events need none)."""

    def __init__(self, state: LeadState, model: Model, at_us: int) -> None:
        self.state, self.model, self.at_us = state, model, at_us
        self._types: dict[str, float] | None = None
        self._groups: dict[str, float] | None = None

    @property
    def types(self) -> dict[str, float]:
        if self._types is None:
            self._types = type_values(self.state, self.model, self.at_us)
        return self._types

    @property
    def groups(self) -> dict[str, float]:
        if self._groups is None:
            self._groups = group_values(self.types, self.model)
        return self._groups

    @property
    def engagement(self) -> float:
        return engagement_of(self.groups, self.model)


def transition(
    scores: Scores,
    to_stage: str,
    reason: str,
    *,
    route: Route | None = None,
    threshold: float | None = None,
    triggers: tuple[str, ...] = (),
) -> Transition:
    """Move the lead (or hand off a route only when to_stage is the current stage).

    A transition with a route is a handoff: it becomes the lead's route and replaces the SLA
    timer (with its own SLA, or none); leaving the stage stops the timer.
    """
    state, model, at_us = scores.state, scores.model, scores.at_us
    from_stage = state.stage
    out = _record(scores, to_stage, reason, route, threshold, triggers)
    state.route = [route.route, route.priority, route.sla, route.task] if route else None
    if to_stage != from_stage:
        _enter(state, model, from_stage, to_stage, at_us)
    if route is not None:
        _start_sla(state, model, route, at_us, triggers)
    return out


def _record(
    scores: Scores,
    to_stage: str,
    reason: str,
    route: Route | None,
    threshold: float | None,
    triggers: tuple[str, ...],
) -> Transition:
    """The Transition with its evidence at `scores.at_us`; takes the next sequence number."""
    state, model = scores.state, scores.model
    state.seq += 1
    return Transition(
        lead_id=state.lead_id,
        seq=state.seq,
        at=us_to_t(scores.at_us),
        from_stage=state.stage,
        to_stage=to_stage,
        reason=reason,
        engagement=scores.engagement,
        groups=dict(scores.groups),
        fit=state.fit,
        grade=grade(state.fit, model),
        threshold=threshold,
        route=route.route if route else None,
        priority=route.priority if route else None,
        sla=route.sla if route else None,
        task=route.task if route else None,
        bant=bant(state.profile, model),
        top_contributors=top_contributors(scores.types, model.top_n),
        model_version=model.ref,
        trigger_event_ids=triggers,
    )


def _start_sla(
    state: LeadState, model: Model, route: Route, at_us: int, triggers: tuple[str, ...]
) -> None:
    """The handoff's SLA timer: due at its instant + SLA, unless sales already owns the lead
    (accepted) or the model names no escalation route.

    The due instant is rounded up to a whole minute: the worker files timers by minute and
    ticks a lead at that minute (stream/pipeline/ticks.py), so a due instant inside a minute
    would never be reached by a tick.
    """
    if route.sla_us is None or state.accepted or model.rules.escalation is None:
        stop_sla(state)
    else:
        due = at_us + route.sla_us
        state.sla_due = -(-due // US_PER_MINUTE) * US_PER_MINUTE
        state.sla_triggers = list(triggers)


def stop_sla(state: LeadState) -> None:
    """No SLA timer any more: sales answered, the lead left the stage, or it fired."""
    state.sla_due = None
    state.sla_triggers = []


def _enter(state: LeadState, model: Model, from_stage: str, to_stage: str, at_us: int) -> None:
    state.stage = to_stage
    state.stage_since = at_us
    stop_sla(state)  # the handoff was for the stage the lead has left
    if from_stage == "mql":
        state.next_tick = None
        state.low_ticks = 0
    if to_stage == "mql":
        state.mql_at = at_us
        state.low_ticks = 0
        state.next_tick = model.next_midnight(at_us)
    elif to_stage in ("nurture", "disqualified"):
        state.accepted = False  # re-entering the funnel needs a new acceptance
        if to_stage == "nurture":
            state.recycled_at = at_us


def fit_rule(scores: Scores, fit_changed: bool, triggers: tuple[str, ...]) -> list[Transition]:
    """fit <= -50 disqualifies, checked whenever the fit changes."""
    state, rules = scores.state, scores.model.rules
    if fit_changed and state.fit <= rules.disqualify_at and state.stage != "disqualified":
        return [transition(scores, "disqualified", "fit", triggers=triggers)]
    return []


def event_rules(scores: Scores, event: Event, canonical: str) -> list[Transition]:
    """Transitions the event itself causes: sales outcomes, deals, fast lane, identify."""
    state, rules = scores.state, scores.model.rules
    triggers = (event.event_id,)
    stage = state.stage
    kind = event.type
    reason = event.properties.get("reason")
    reason = reason if isinstance(reason, str) and reason else None
    out: list[Transition] = []
    if kind in SALES_ANSWERS:
        stop_sla(state)
    if kind == ev.SALES_ACCEPTED:
        state.accepted = True
    elif kind == ev.SALES_REJECTED:
        state.accepted = False
        if reason in rules.disqualify_reasons and stage != "disqualified":
            out.append(transition(scores, "disqualified", reason or "", triggers=triggers))
        elif stage in SALES_STAGES:
            out.append(transition(scores, "nurture", reason or "rejected", triggers=triggers))
    elif kind == ev.SALES_NO_DECISION and stage in SALES_STAGES:
        out.append(transition(scores, "nurture", "no_decision", triggers=triggers))
    elif kind == ev.OPPORTUNITY_CREATED and stage == "sql":
        out.append(transition(scores, "opportunity", "opportunity_created", triggers=triggers))
    elif kind == ev.OPPORTUNITY_WON and stage in DEAL_STAGES:
        out.append(transition(scores, "customer", "won", triggers=triggers))
    elif kind == ev.OPPORTUNITY_LOST and stage in DEAL_STAGES:
        out.append(transition(scores, "nurture", reason or "lost", triggers=triggers))
    if canonical in rules.fast_lane_types:
        if state.stage == "disqualified":
            out.append(
                transition(
                    scores,
                    "disqualified",
                    "fast_lane",
                    route=rules.disqualified_route,
                    triggers=triggers,
                )
            )
        elif state.stage in rules.fast_lane_from:
            letter = grade(state.fit, scores.model)
            route = rules.fast_lane_routes[letter]
            out.append(
                transition(scores, "sales_ready", "fast_lane", route=route, triggers=triggers)
            )
    if state.stage == "anonymous" and (kind == ev.IDENTIFY or event.user_id or event.email):
        out.append(transition(scores, "lead", "identify", triggers=triggers))
    return out


def mql_rule(scores: Scores, triggers: tuple[str, ...]) -> list[Transition]:
    """lead/nurture -> mql on score (grade threshold, mofu guard, nurture cooldown), then the
    MQL handoff: BANT >= 3 known true -> sales_ready at the same instant, else qualify_bant."""
    state, model = scores.state, scores.model
    rules = model.rules
    if state.stage not in rules.mql_from:
        return []
    threshold = rules.mql_thresholds.get(grade(state.fit, model))
    if threshold is None:
        return []
    at_us = scores.at_us
    if (
        state.stage == "nurture"
        and state.recycled_at is not None
        and at_us - state.recycled_at < rules.cooldown_us
    ):
        return []
    if not mofu_guard(state, at_us, model) or scores.engagement < threshold:
        return []
    if bant_true_count(bant(state.profile, model)) >= rules.bant_min_true:
        first = transition(scores, "mql", "score", threshold=threshold, triggers=triggers)
        second = transition(
            scores,
            "sales_ready",
            "handoff",
            route=rules.ready,
            threshold=threshold,
            triggers=triggers,
        )
        return [first, second]
    return [
        transition(
            scores, "mql", "score", route=rules.qualify, threshold=threshold, triggers=triggers
        )
    ]


def sql_rule(scores: Scores, triggers: tuple[str, ...]) -> list[Transition]:
    """mql/sales_ready -> sql when sales accepted and Need, Timeline, Budget or Authority."""
    state = scores.state
    if state.stage in SQL_FROM and state.accepted and sql_ready(bant(state.profile, scores.model)):
        return [transition(scores, "sql", "accepted", triggers=triggers)]
    return []


def _due(at: int | None, limit_us: int, inclusive: bool) -> int | None:
    if at is not None and (at < limit_us or (inclusive and at == limit_us)):
        return at
    return None


def fire_ticks(state: LeadState, model: Model, limit_us: int, inclusive: bool) -> list[Transition]:
    """Timers before `limit_us` (or at it when inclusive), in time order: daily ticks (MQL exit
    by hysteresis) and the SLA timer (one breach). At the same instant the daily tick goes
    first: a lead it moves out of the stage no longer owes the SLA.

    A fired timer advances the lead's clock to its instant: a later event stamped before it
    is late and cannot move a decision before it.
    """
    out: list[Transition] = []
    rules = model.rules
    while True:
        daily = _due(state.next_tick, limit_us, inclusive)
        sla = _due(state.sla_due, limit_us, inclusive)
        if daily is None and sla is None:
            break
        is_tick = daily is not None and (sla is None or daily <= sla)
        at = daily if is_tick else sla
        assert at is not None
        if is_tick:
            if state.stage != "mql" or state.accepted:
                state.next_tick = None  # accepted leads do not count ticks; leaving mql clears it
                continue
            state.next_tick = model.next_midnight(at)
        if state.clock is None or at > state.clock:
            state.clock = at
        scores = Scores(state, model, at)
        if not is_tick:
            out.extend(_breach(scores))
            continue
        if scores.engagement < rules.exit_below:
            state.low_ticks += 1
        else:
            state.low_ticks = 0
        if state.low_ticks >= rules.exit_ticks:
            out.append(transition(scores, "nurture", "decayed"))
    return out


def _breach(scores: Scores) -> list[Transition]:
    """The SLA of the open handoff passed unanswered: one escalation, in the current stage,
    to the model's escalation route. The lead's own route stays; no new timer starts."""
    state = scores.state
    triggers = tuple(state.sla_triggers)
    stop_sla(state)
    escalation = scores.model.rules.escalation
    if escalation is None:  # the model changed and names no escalation route any more
        return []
    return [_record(scores, state.stage, SLA_BREACHED, escalation, None, triggers)]
