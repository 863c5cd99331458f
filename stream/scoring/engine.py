"""apply(state, event, model) -> Outcome: the only way events change a lead, plus ticks and merge.

Every function here mutates the LeadState it is given and returns it in `Outcome.state`;
callers that keep state in a table reassign it (`table[k] = outcome.state`), which is what
writes the changelog.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from stream.scoring import stages
from stream.scoring.decay import decayed
from stream.scoring.events import IDENTIFY, MANUAL_OVERRIDE, US_PER_DAY, Event, t_to_us, us_to_t
from stream.scoring.explain import LedgerEntry, Transition
from stream.scoring.fit import fit_score, grade
from stream.scoring.journey import is_early_pricing, streak_due
from stream.scoring.model import US_PER_MINUTE, Model, TypeRule
from stream.scoring.rules import dedupe_value, freq_capped
from stream.scoring.state import (
    LeadState,
    digest,
    prune,
    remember_all,
    remember_id,
    seen_before,
)

STREAK_SUFFIX = "/journey.research_streak"


@dataclass(init=False)
class Outcome:
    """What one call did: the (same, mutated) state, whether the event was applied, the stage
    transitions in order, the ledger entries written and the derived events emitted.

    `__init__` written out: one is made per event (`default_factory` calls cost more)."""

    state: LeadState
    applied: bool
    transitions: list[Transition]
    ledger: list[LedgerEntry]
    derived: list[Event]

    def __init__(
        self,
        state: LeadState,
        applied: bool = True,
        transitions: list[Transition] | None = None,
        ledger: list[LedgerEntry] | None = None,
        derived: list[Event] | None = None,
    ) -> None:
        self.state = state
        self.applied = applied
        self.transitions = [] if transitions is None else transitions
        self.ledger = [] if ledger is None else ledger
        self.derived = [] if derived is None else derived


def _entry(
    state: LeadState,
    rule: TypeRule,
    event_id: str,
    t_us: int,
    key: str | None,
    model: Model,
    out: Outcome,
    explain: bool,
) -> str | None:
    """Steps 1–4 of section 4 for one event of a catalogue type; its ledger entry goes to
    `out` when `explain` (replay and the reports read no ledger). Returns the suppression."""
    # `is_duplicate`, `remember_key`, `accumulate`, `add_time` and `note_scored` written out
    # (the same steps, one digest of the key): this runs for every scored event.
    name = rule.name
    suppressed: str | None = None
    if key is not None:
        value = digest(key)
        keys = state.keys.setdefault(name, {})
        if value in keys:
            suppressed = "dedupe"
            del keys[value]  # remembered again as the newest
        keys[value] = None
        while len(keys) > model.keys_per_type:
            del keys[next(iter(keys))]
    if suppressed is None and rule.freq is not None and freq_capped(state, rule, t_us, model):
        suppressed = "freq_cap"
    base = float(rule.points)
    tags: tuple[str, ...] = ()
    if suppressed is None:
        j = model.journey
        if name == j.early_type and is_early_pricing(state, t_us, model):
            base *= j.early_multiplier
            tags = (j.early_tag,)
        acc = state.acc.get(name)
        half_life = rule.half_life
        if acc is None:
            state.acc[name] = [base, t_us]
        else:
            ref = int(acc[1])
            if t_us >= ref:
                dt = t_us - ref
                decay = (
                    1.0 if half_life is None or dt == 0 else 0.5 ** (dt / US_PER_DAY / half_life)
                )
                state.acc[name] = [acc[0] * decay + base, t_us]
            else:
                dt = ref - t_us
                decay = (
                    1.0 if half_life is None or dt == 0 else 0.5 ** (dt / US_PER_DAY / half_life)
                )
                state.acc[name] = [acc[0] + base * decay, ref]
        if rule.horizon_us:
            times = state.times.get(name)
            if times is None:
                state.times[name] = [t_us]
            elif not times or times[-1] <= t_us:
                times.append(t_us)
            else:
                bisect.insort(times, t_us)
        group = rule.group
        if group in j.early_prior_groups and state.prior < j.early_min_prior:
            state.prior += 1
        if (
            group in j.mofu_groups
            and j.mofu_exclude_tag not in tags
            and (state.mofu_last is None or t_us > state.mofu_last)
        ):
            state.mofu_last = t_us
    if explain:
        out.ledger.append(
            LedgerEntry(
                lead_id=state.lead_id,
                event_id=event_id,
                type=rule.name,
                at=us_to_t(t_us),
                base_points=base,
                half_life=rule.half_life,
                group=rule.group,
                tags=tags,
                suppressed=suppressed,
                model_version=model.ref,
                points_at_entry=0.0 if suppressed else base,
            )
        )
    return suppressed


def _score(
    state: LeadState, event: Event, canonical: str, model: Model, out: Outcome, explain: bool
) -> None:
    rule = model.types.get(canonical)
    if rule is None or rule.derived:
        return  # not in the catalogue (or engine-made only): kept, scores nothing
    if canonical in model.machine_open_types and (
        event.properties.get(model.machine_open_property) is True
    ):
        return  # privacy-proxy prefetch: dropped, no ledger entry, no dedupe key
    suppressed = _entry(
        state,
        rule,
        event.event_id,
        event.t_us,
        dedupe_value(rule, event.properties),
        model,
        out,
        explain,
    )
    j = model.journey
    if (
        suppressed is None
        and rule.name == j.streak_trigger
        and streak_due(state, event.t_us, model)
    ):
        derived = Event(
            event_id=event.event_id + STREAK_SUFFIX,
            type=j.streak_emit,
            occurred_at=event.occurred_at,
            channel=event.channel,
            lead_id=state.lead_id,
        )
        out.derived.append(derived)
        streak = model.types[j.streak_emit]
        _entry(state, streak, derived.event_id, event.t_us, None, model, out, explain)


def _update_profile(state: LeadState, traits: dict[str, Any] | Any, model: Model) -> bool:
    """Apply traits (last applied wins, null clears); True when the fit changed."""
    if not traits:
        return False
    keep = model.profile_traits
    changed = False
    for name, value in traits.items():
        if name not in keep:
            continue
        if value is None:
            changed = state.profile.pop(name, None) is not None or changed
        elif state.profile.get(name, _MISSING) != value:
            state.profile[name] = value
            changed = True
    if not changed:
        return False
    state.company = None
    old = state.fit
    state.fit = fit_score(state.profile, model)
    return state.fit != old


_MISSING = object()


def apply(
    state: LeadState,
    event: Event,
    model: Model,
    *,
    offset: tuple[int, int] | None = None,
    explain: bool = True,
) -> Outcome:
    """Apply one event: due ticks, profile, scoring, derived events, stage rules (in that order).

    With `offset` = (partition, offset), an offset at or below the partition's watermark is a
    no-op; so is an event_id already applied (transport dedupe, no ledger entry). Without
    `explain` no ledger entries are made (the state and transitions are the same).
    """
    event_digest = digest(event.event_id)
    if offset is not None:  # `_already_consumed`, written out: asked for every event
        mark = state.watermarks.get(offset[0])
        if mark is not None and offset[1] <= mark:
            return Outcome(state, applied=False)
        state.watermarks[offset[0]] = offset[1]
    if event_digest in state.seen:
        return Outcome(state, applied=False)
    out = Outcome(state)
    t_us = event.t_us
    kind = event.type
    # the day before any timer fires: a daily tick moves the clock into the event's day too,
    # and an MQL (ticked daily) would otherwise never see its day change and never be pruned
    clock = state.clock
    old_day = None if clock is None else clock // US_PER_DAY
    if state.next_tick is not None or state.sla_due is not None:
        out.transitions.extend(stages.fire_ticks(state, model, t_us, inclusive=False))
        clock = state.clock
    if clock is None or t_us > clock:
        state.clock = clock = t_us
    seen = state.seen  # `remember_digest` of an id not seen before, written out
    day = seen[event_digest] = clock // US_PER_DAY
    if len(seen) == 1 or (state.seen_floor is not None and day < state.seen_floor):
        state.seen_floor = day
    if len(seen) > model.seen_max:
        while len(seen) > model.seen_max:
            del seen[next(iter(seen))]
        state.seen_runs = None
    if state.last_event is None or t_us > state.last_event:
        state.last_event = t_us
    state.model_version = model.ref
    if event.account_id:
        state.account_id = event.account_id
    fit_changed = _update_profile(state, event.traits, model) if event.traits else False
    canonical = model.aliases.get(kind, kind)
    _score(state, event, canonical, model, out, explain)
    if kind in model.email_invalid or canonical in model.email_invalid:
        state.email_invalid = True
    if canonical in model.email_suppressed:
        state.email_suppressed = True
    # The stage rules, each asked only where it can apply (most events move nobody).
    scores = stages.Scores(state, model, clock)
    triggers = (event.event_id,)
    transitions = out.transitions
    rules = model.rules
    if fit_changed:
        transitions += stages.fit_rule(scores, fit_changed, triggers)
    if (
        kind in stages.EVENT_RULE_TYPES
        or canonical in rules.fast_lane_types
        or (state.stage == "anonymous" and (kind == IDENTIFY or event.user_id or event.email))
    ):
        transitions += stages.event_rules(scores, event, canonical)
    if kind != MANUAL_OVERRIDE:
        if state.stage in rules.mql_from:
            transitions += stages.mql_rule(scores, triggers)
        if state.accepted and state.stage in stages.SQL_FROM:
            transitions += stages.sql_rule(scores, triggers)
    else:
        target = str(event.properties["stage"])
        if target != state.stage:
            transitions.append(
                stages.transition(scores, target, "manual_override", triggers=triggers)
            )
    if old_day is None or clock // US_PER_DAY != old_day:
        prune(state, model)  # once per lead per day of its clock: bounded, and cheap per event
    return out


def _already_consumed(state: LeadState, offset: tuple[int, int] | None) -> bool:
    """True when `offset` is at or below its partition's watermark; else record it."""
    if offset is None:
        return False
    partition, position = offset
    mark = state.watermarks.get(partition)
    if mark is not None and position <= mark:
        return True
    state.watermarks[partition] = position
    return False


def tick(state: LeadState, now_t: float, model: Model) -> Outcome:
    """Fire every timer (daily tick, SLA) with instant <= now_t (days), in time order."""
    out = Outcome(state)
    out.transitions.extend(stages.fire_ticks(state, model, t_to_us(now_t), inclusive=True))
    if out.transitions:
        prune(state, model)
    return out


def next_tick_at(state: LeadState, model: Model) -> float | None:
    """The next instant (days) a timer could change this lead: the earlier of its next daily
    tick and its SLA due instant; None when it needs neither."""
    daily = state.next_tick
    if state.stage != "mql" or state.accepted:
        daily = None
    due = [us for us in (daily, state.sla_due) if us is not None]
    return us_to_t(min(due)) if due else None


def _merge_acc(mine: list[float] | None, theirs: list[float], rule: TypeRule | None) -> list[float]:
    if mine is None:
        return list(theirs)
    half_life = rule.half_life if rule else None
    ref = max(int(mine[1]), int(theirs[1]))
    value = decayed(mine[0], ref - int(mine[1]), half_life)
    value += decayed(theirs[0], ref - int(theirs[1]), half_life)
    return [value, ref]


def catch_up(state: LeadState, now_t: float, model: Model) -> Outcome:
    """Fire every timer strictly before `now_t` (days), in time order, however many are due.

    The worker's partition clock: a lead that gets no events of its own is caught up when its
    partition's stream time passes its timers. Strict, as before an event: an event stamped
    exactly at a timer's instant is applied before that timer, so a lead's own event at the
    partition's current stream time may still come.
    """
    out = Outcome(state)
    out.transitions.extend(stages.fire_ticks(state, model, t_to_us(now_t), inclusive=False))
    if out.transitions:
        prune(state, model)
    return out


def merge_states(
    known: LeadState,
    visitors: LeadState | Sequence[LeadState],
    identify: Event,
    model: Model,
    *,
    offset: tuple[int, int] | None = None,
) -> Outcome:
    """Identified visitors' histories join the known lead (scoring-model.md section 6).

    Entries keep their own times and contributions add; dedupe keys, window histories and
    flags unite; the known lead's profile wins where both have a trait; the known lead's stage
    stays. A visitor who reached sales_ready as a hand-raiser carries that over: the lead
    moves to sales_ready once, with reason `identified` (not a second fast-lane decision),
    routed by the grade it has now that its profile is known, and keeping the hand-raise's own
    SLA deadline (no second escalation for one request). Stage rules then run once, at the
    identify instant. `known` is mutated and returned. `offset` works as in `apply` (the merge
    record's position in the known lead's partition).
    """
    if _already_consumed(known, offset) or seen_before(known, identify.event_id):
        return Outcome(known, applied=False)
    out = Outcome(known)
    t_us = identify.t_us
    out.transitions.extend(stages.fire_ticks(known, model, t_us, inclusive=False))
    remember_id(known, identify.event_id, model, at_us=t_us)
    old_fit = known.fit
    group = [visitors] if isinstance(visitors, LeadState) else list(visitors)
    for visitor in group:
        _unite(known, visitor, model)
    known.fit = fit_score(known.profile, model)
    _update_profile(known, identify.traits, model)
    known.clock = _latest(known.clock, t_us)
    known.last_event = _latest(known.last_event, t_us)
    known.model_version = model.ref
    if identify.account_id:
        known.account_id = identify.account_id
    assert known.clock is not None
    scores = stages.Scores(known, model, known.clock)
    triggers = (identify.event_id,)
    out.transitions.extend(stages.fit_rule(scores, known.fit != old_fit, triggers))
    rules = model.rules
    raised = [v for v in group if v.stage == "sales_ready"]
    if raised and known.stage in rules.fast_lane_from and known.stage != "disqualified":
        first = min(raised, key=lambda v: v.stage_since or 0)
        route = rules.fast_lane_routes[grade(known.fit, model)]
        out.transitions.append(
            stages.transition(
                scores,
                "sales_ready",
                "identified",
                route=route,
                triggers=(*first.sla_triggers, identify.event_id),
            )
        )
        # One request, one deadline: the SLA of the route it has now, counted from the
        # hand-raise; none if the visitor's own deadline already escalated.
        if first.sla_due is None or first.stage_since is None or route.sla_us is None:
            stages.stop_sla(known)
        else:
            due = first.stage_since + route.sla_us
            known.sla_due = -(-due // US_PER_MINUTE) * US_PER_MINUTE
            known.sla_triggers = list(first.sla_triggers)
    out.transitions.extend(stages.event_rules(scores, identify, model.canonical(identify.type)))
    out.transitions.extend(stages.mql_rule(scores, triggers))
    out.transitions.extend(stages.sql_rule(scores, triggers))
    prune(known, model)
    return out


def apply_joining(
    state: LeadState,
    event: Event,
    model: Model,
    *,
    visitors: Sequence[LeadState] = (),
    conflicts: Sequence[str] = (),
    position: tuple[int, int] | None = None,
    merge_only: bool = False,
    merge_marks: Iterable[str] = (),
    explain: bool = True,
) -> tuple[list[Outcome], bool]:
    """An event that ties visitors to the lead or meets identity conflicts: (the outcomes in
    order, whether the merge or the event applied).

    The visitors merge at the event's instant: an identify is the merge's own event; any other
    event that first ties a visitor (a track with both ids) is applied right after a merge made
    of it. Each conflict is recorded as an `identity.conflict` of its own, the merge ids in
    `merge_marks` are remembered, then the event applies. `merge_only`: a late history, with
    nothing to apply after it. The worker's live and shadow models both go through here.
    """
    outcomes: list[Outcome] = []
    applied = False
    consumed = False  # whether the merge was the event itself
    if visitors:
        identify = event
        if event.type != IDENTIFY and not merge_only:
            identify = event.with_changes(type=IDENTIFY, event_id=f"merge:{event.event_id}")
        consumed = identify is event
        merged = merge_states(
            state, visitors, identify, model, offset=position if consumed else None
        )
        outcomes.append(merged)
        applied = merged.applied
    for other in conflicts:
        conflict = event.with_changes(
            type="identity.conflict",
            event_id=f"conflict:{event.event_id}",
            properties={"other_lead_id": other},
        )
        outcomes.append(apply(state, conflict, model))
    for mark in merge_marks:
        remember_id(state, mark, model, at_us=event.t_us)
    if not consumed and not merge_only:
        outcome = apply(state, event, model, offset=position, explain=explain)
        outcomes.append(outcome)
        applied = outcome.applied
    return outcomes, applied


def _unite(known: LeadState, visitor: LeadState, model: Model) -> None:
    """One visitor's history into the known lead: entries, windows, keys, flags, profile."""
    for name, acc in visitor.acc.items():
        known.acc[name] = _merge_acc(known.acc.get(name), acc, model.types.get(name))
    for name, times in visitor.times.items():
        known.times[name] = sorted([*known.times.get(name, ()), *times])
    for name, keys in visitor.keys.items():
        mine = known.keys.setdefault(name, {})
        for key in keys:
            mine.setdefault(key, None)
        while len(mine) > model.keys_per_type:
            del mine[next(iter(mine))]
    known.prior = min(model.journey.early_min_prior, known.prior + visitor.prior)
    known.mofu_last = _latest(known.mofu_last, visitor.mofu_last)
    known.recycled_at = _latest(known.recycled_at, visitor.recycled_at)
    remember_all(known, visitor.seen, model)
    known.email_invalid = known.email_invalid or visitor.email_invalid
    known.email_suppressed = known.email_suppressed or visitor.email_suppressed
    known.account_id = known.account_id or visitor.account_id
    for name, value in visitor.profile.items():
        known.profile.setdefault(name, value)
    known.company = None
    known.clock = _latest(known.clock, visitor.clock)
    known.last_event = _latest(known.last_event, visitor.last_event)


def _latest(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)
