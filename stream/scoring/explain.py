"""Explanations: ledger entries, transitions, top contributors and the lead snapshot."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stream.scoring.events import format_t, format_us, t_to_us
from stream.scoring.fit import bant, grade
from stream.scoring.journey import mofu_guard
from stream.scoring.model import Model
from stream.scoring.rules import engagement_of, group_values, type_values
from stream.scoring.state import LeadState


@dataclass(slots=True)
class LedgerEntry:
    """One scored or suppressed entry (scoring-model.md section 9). Never changed once made;
    not frozen: a frozen dataclass costs seven times as much to build, and a live worker makes
    one per scored event.

    `base_points` is after the journey modifier for scored entries and the catalogue points
    for suppressed ones; `points_at_entry` is what the entry earned at its own time (0 when
    suppressed).
    """

    lead_id: str
    event_id: str
    type: str
    at: float
    base_points: float
    half_life: float | None
    group: str
    tags: tuple[str, ...]
    suppressed: str | None
    model_version: str
    points_at_entry: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; `at` as RFC 3339 UTC."""
        return {
            "kind": "ledger",
            "lead_id": self.lead_id,
            "event_id": self.event_id,
            "type": self.type,
            "at": format_t(self.at),
            "base_points": self.base_points,
            "half_life": self.half_life,
            "group": self.group,
            "tags": list(self.tags),
            "suppressed": self.suppressed,
            "model_version": self.model_version,
            "points_at_entry": self.points_at_entry,
        }


@dataclass(frozen=True, slots=True)
class Transition:
    """A stage change (or a route-only handoff of a disqualified lead), with its evidence."""

    lead_id: str
    seq: int
    at: float
    from_stage: str
    to_stage: str
    reason: str
    engagement: float
    groups: Mapping[str, float]
    fit: float
    grade: str
    threshold: float | None
    route: str | None
    priority: str | None
    sla: str | None
    task: str | None
    bant: Mapping[str, bool | None]
    top_contributors: tuple[tuple[str, float], ...]
    model_version: str
    trigger_event_ids: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The replay "transition" line (SPEC.md, Command line)."""
        return {
            "kind": "transition",
            "lead_id": self.lead_id,
            "at": format_t(self.at),
            "from": self.from_stage,
            "to": self.to_stage,
            "reason": self.reason,
            "engagement": self.engagement,
            "groups": dict(self.groups),
            "fit": self.fit,
            "grade": self.grade,
            "route": self.route,
            "priority": self.priority,
            "sla": self.sla,
            "bant": dict(self.bant),
            "top_contributors": [{"type": t, "value": v} for t, v in self.top_contributors],
            "model_version": self.model_version,
            "seq": self.seq,
            "trigger_event_ids": list(self.trigger_event_ids),
            "threshold": self.threshold,
            "task": self.task,
        }


def top_contributors(types: Mapping[str, float], n: int) -> tuple[tuple[str, float], ...]:
    """The n largest positive per-type values, largest first (ties by type name)."""
    ranked = sorted([(-v, k) for k, v in types.items() if v > 0])  # largest first, then by name
    return tuple((k, -v) for v, k in ranked[:n])


def _time(us: int | None) -> str | None:
    return None if us is None else format_us(us)


def snapshot(state: LeadState, model: Model, at_t: float | None = None) -> dict[str, Any]:
    """JSON-ready view of a lead evaluated at `at_t` (days; default the lead's clock).

    Raises ValueError for an instant before the lead's clock: decisions never look back.
    Scores are not rounded here.
    """
    at_us = state.clock if at_t is None else t_to_us(at_t)
    if at_us is not None and state.clock is not None and at_us < state.clock:
        raise ValueError(
            f"snapshot at {format_us(at_us)} is before the lead's clock {format_us(state.clock)}"
        )
    types = type_values(state, model, at_us) if at_us is not None else {}
    groups = group_values(types, model)
    route = state.route or [None, None, None, None]
    return {
        "lead_id": state.lead_id,
        "stage": state.stage,
        "fit": state.fit,
        "grade": grade(state.fit, model),
        "engagement": engagement_of(groups, model),
        "groups": groups,
        "types": types,
        "flags": {
            "email_invalid": state.email_invalid,
            "email_suppressed": state.email_suppressed,
            "mofu_guard": at_us is not None and mofu_guard(state, at_us, model),
        },
        "bant": bant(state.profile, model),
        "route": route[0],
        "priority": route[1],
        "sla": route[2],
        "task": route[3],
        "last_event_at": _time(state.last_event),
        "clock": _time(state.clock),
        "at": _time(at_us),
        "model_version": model.ref,
        "top_contributors": [
            {"type": t, "value": v} for t, v in top_contributors(types, model.top_n)
        ],
        "account_id": state.account_id,
        "accepted": state.accepted,
        "stage_since": _time(state.stage_since),
    }
