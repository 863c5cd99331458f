"""One replay of a history under one model, and which lead each input event ended up with.

`run_model` is the only place reports replay: it calls `replay_lines` (the pipeline of
`leadstream replay`, identity included) and keeps its output. Lead ids come from that output,
never from the input's ids, because identity may merge visitors into users.

`attribute` answers "which lead did this event go to" for the events a report looks up
(sales outcomes, first touches). It asks the engine's own records first — the event ids each
final state remembers having applied, and the trigger ids of transitions — and only for events
those no longer name (a state remembers ids for `retention.seen_event_days`) falls back on
the ids of events already placed: an event with a user id that belongs to a lead goes there;
anonymous ids and emails follow the lead their other events went to.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from stream.pipeline.replay import ReplayStats, replay_lines
from stream.reports.errors import ReportError
from stream.reports.history import History, HistoryEvent
from stream.scoring.identity import is_visitor
from stream.scoring.model import Model, ModelError, parse_model
from stream.scoring.state import LeadState, digest

STAGE_CHANGE_REASONS_EXCLUDED = frozenset({"sla_breached"})
"""Transition reasons that are not stage changes (an escalation stays in its stage)."""


@dataclass
class Run:
    """What a replay of one history under one model produced."""

    model: Model
    transitions: list[dict[str, Any]]
    """Replay "transition" lines in order (`at` also parsed to `t`, model days)."""
    leads: dict[str, dict[str, Any]]
    """Replay "lead" lines by lead id, in first-seen order."""
    states: dict[str, LeadState]
    stats: ReplayStats
    errors: list[tuple[int, str]] = field(default_factory=list)
    """Bad input lines (line number, message), as the replay reported them."""

    def by_lead(self) -> dict[str, list[dict[str, Any]]]:
        """Transitions grouped by lead id, each lead's in order."""
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for tr in self.transitions:
            out[tr["lead_id"]].append(tr)
        return out


def _t(text: str) -> float:
    from stream.scoring.events import parse_time, us_to_t

    return us_to_t(parse_time(text, "at"))


def run_model(history: History, model: Model, until: datetime | str | None = None) -> Run:
    """Replay `history` under `model` with the replay pipeline and keep everything it says."""
    return run_lines(history.lines, model, until)


def run_lines(
    lines: Iterable[str],
    model: Model,
    until: datetime | str | None = None,
    *,
    keep_states: bool = True,
) -> Run:
    """`run_model` of bare lines (a worker process holds no History); `keep_states=False`
    leaves the final states out when nobody reads them."""
    errors: list[tuple[int, str]] = []
    stats = ReplayStats()
    states: dict[str, LeadState] = {}
    transitions: list[dict[str, Any]] = []
    leads: dict[str, dict[str, Any]] = {}
    for item in replay_lines(
        lines,
        model,
        until,
        on_error=lambda n, msg: errors.append((n, msg)),
        stats=stats,
        states=states if keep_states else None,
    ):
        if item["kind"] == "transition":
            item["t"] = _t(item["at"])
            transitions.append(item)
        elif item["kind"] == "lead":
            leads[item["lead_id"]] = item
    return Run(model, transitions, leads, states, stats, errors)


def with_thresholds(model: Model, thresholds: Mapping[str, float], tag: str) -> Model:
    """A copy of `model` with other MQL thresholds, checked like any model file.

    The copy goes through `parse_model`, so a sweep can never build a model the schema would
    refuse; its id gets `-tag` (versions are plain semver) so transitions say which variant
    made them.
    """
    raw = copy.deepcopy(model.raw)
    raw["stages"]["mql"]["thresholds"] = dict(thresholds)
    raw["id"] = f"{model.id}-{tag}"
    try:
        return parse_model(orjson.dumps(raw).decode(), f"{model.id}-{tag}")
    except ModelError as exc:  # e.g. a threshold outside the engagement range
        raise ReportError(f"thresholds {dict(thresholds)}: not a valid model ({exc})") from None


def is_stage_change(tr: Mapping[str, Any]) -> bool:
    """A transition that moves the lead (not an escalation or a route-only handoff)."""
    return tr["from"] != tr["to"] and tr["reason"] not in STAGE_CHANGE_REASONS_EXCLUDED


def attribute(
    run: Run, history: History, want: Callable[[HistoryEvent], bool] | None = None
) -> dict[str, str]:
    """Event id -> lead id for the history's events (those `want` accepts), as the replay placed
    them; events it cannot place (bad lines, ignored after --until) are left out."""
    known = set(run.leads) | set(run.states)
    placed: dict[str, str] = {}
    by_digest: dict[int, str] = {}
    for lead_id, state in run.states.items():
        for seen in state.seen:
            # a digest both in a merged-away visitor and in the lead it joined: the lead wins
            if seen not in by_digest or is_visitor(by_digest[seen]):
                by_digest[seen] = lead_id
    for tr in run.transitions:
        for event_id in tr.get("trigger_event_ids") or ():
            placed.setdefault(event_id, tr["lead_id"])
    alias: dict[str, str] = {}
    events = history.events
    for event_id, event in events.items():
        lead = placed.get(event_id) or by_digest.get(digest(event_id))
        if lead is not None:
            placed[event_id] = lead
            for value in event.ids:
                if value is not None and (value not in alias or is_visitor(alias[value])):
                    alias[value] = lead
    out: dict[str, str] = {}
    for event_id, event in events.items():
        if want is not None and not want(event):
            continue
        lead = placed.get(event_id)
        if lead is None:
            lead = _by_ids(event, alias, known)
        if lead is not None:
            out[event_id] = lead
    return out


def _by_ids(event: HistoryEvent, alias: Mapping[str, str], known: set[str]) -> str | None:
    """The fallback: a user id or lead id that is a lead, else where its other ids went."""
    for value in (event.lead_id, event.user_id):
        if value is not None and value in known:
            return value
    for value in event.ids:
        if value is not None and value in alias:
            return alias[value]
    return None


def first_touches(run: Run, history: History) -> dict[str, float]:
    """Lead id -> time (model days) of its earliest input event."""
    placed = attribute(run, history)
    out: dict[str, float] = {}
    for event_id, lead in placed.items():
        at = history.events[event_id].at
        if lead not in out or at < out[lead]:
            out[lead] = at
    return out
