"""Builders shared by the scoring tests: events at day offsets, folds, model variants."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import yaml

from stream.scoring import Event, LeadState, Model, apply, new_state
from stream.scoring.events import US_PER_DAY, format_us, parse_time, us_to_t
from stream.scoring.explain import LedgerEntry, Transition
from stream.scoring.model import MODELS_DIR, parse_model

BASE_US = parse_time("2026-01-05T00:00:00Z")  # a Monday, 00:00 UTC
_ids = itertools.count(1)

# fit 85 = vp 25 + decision_maker 10 + 201–1000 employees 20 + software 15 + US 10 + business 5
TRAITS_A = {
    "seniority": "vp",
    "buying_role": "decision_maker",
    "employees": 500,
    "industry": "software",
    "country": "US",
    "email_type": "business",
}
# fit 52 = manager 12 + influencer 5 + 51–200 employees 12 + manufacturing 8 + US 10 + business 5
TRAITS_B = {
    "seniority": "manager",
    "buying_role": "influencer",
    "employees": 100,
    "industry": "manufacturing",
    "country": "US",
    "email_type": "business",
}
# fit 29 = individual_contributor 4 + 11–50 employees 5 + software 15 + business 5
TRAITS_C = {
    "seniority": "individual_contributor",
    "employees": 30,
    "industry": "software",
    "email_type": "business",
}
# fit -5 = student -20 + software 15 → D (not disqualified)
TRAITS_D = {"seniority": "student", "industry": "software"}
TRAITS = {"A": TRAITS_A, "B": TRAITS_B, "C": TRAITS_C, "D": TRAITS_D}


def at(day: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0) -> str:
    """RFC 3339 time `day` days (+ h/m/s) after BASE (2026-01-05T00:00:00Z)."""
    us = BASE_US + round(
        day * US_PER_DAY + hours * 3_600_000_000 + minutes * 60_000_000 + seconds * 1_000_000
    )
    return format_us(us)


def t_of(day: float = 0, hours: float = 0, minutes: float = 0) -> float:
    """Model time t (days) of at(...)."""
    return us_to_t(parse_time(at(day, hours, minutes)))


def ev(type_: str, when: str, lead: str = "L1", eid: str | None = None, **fields: Any) -> Event:
    """A canonical event of `lead` at `when`; extra fields as in the canonical dict."""
    d: dict[str, Any] = {
        "event_id": eid or f"ev-{next(_ids)}",
        "type": type_,
        "occurred_at": when,
        "lead_id": lead,
    }
    d.update(fields)
    return Event.from_dict(d)


def identify(
    when: str, grade: str = "A", lead: str = "L1", eid: str | None = None, **traits: Any
) -> Event:
    """An identify event carrying the traits of a lead of the given grade (plus `traits`)."""
    return ev(
        "identify", when, lead, eid, email=f"{lead}@example.com", traits={**TRAITS[grade], **traits}
    )


class Run:
    """A fold of events through apply(): the state, all transitions and ledger entries."""

    def __init__(self, model: Model, lead: str = "L1") -> None:
        self.model = model
        self.state: LeadState = new_state(lead)
        self.transitions: list[Transition] = []
        self.ledger: list[LedgerEntry] = []

    def feed(self, *events: Event) -> Run:
        for event in events:
            out = apply(self.state, event, self.model)
            self.state = out.state
            self.transitions.extend(out.transitions)
            self.ledger.extend(out.ledger)
        return self

    def moves(self) -> list[tuple[str, str, str]]:
        return [(t.from_stage, t.to_stage, t.reason) for t in self.transitions]


def fold(model: Model, events: Iterable[Event], lead: str = "L1") -> Run:
    return Run(model, lead).feed(*events)


def model_with(changes: dict[str, Any]) -> Model:
    """The default model with keys replaced by '/' paths, e.g. {"stages/hysteresis/below": 5}."""
    raw = yaml.safe_load((MODELS_DIR / "default-b2b.yaml").read_text())
    for dotted, value in changes.items():
        node = raw
        *parents, last = dotted.split("/")
        for key in parents:
            node = node[key]
        node[last] = value
    return parse_model(yaml.safe_dump(raw), "variant")
