"""Generated histories with known answers: each lead's peak engagement is chosen in advance.

A lead's scoring events all share one instant, so nothing decays between them and its peak
engagement is exactly the sum of their points (default model, well inside every cap). The
first one is a webinar attendance, so the mofu guard holds from the start; no pricing view,
no product view, no hand-raise: no early-pricing, streak or fast-lane effects. Under a
threshold θ of its grade the lead therefore becomes an MQL exactly when its peak ≥ θ.
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson

from stream.scoring.events import US_PER_DAY, format_us, parse_time

BASE_US = parse_time("2026-01-05T09:00:00Z")  # a Monday
HOUR_US = 3_600_000_000
# fit 95 = c_level 30 + decision_maker 10 + 1001+ employees 25 + software 15 + US 10 + business 5
GRADE_A = {
    "seniority": "c_level",
    "buying_role": "decision_maker",
    "employees": 2000,
    "industry": "software",
    "country": "US",
    "email_type": "business",
}
# fit 59 = manager 12 + influencer 5 + 51–200 employees 12 + software 15 + US 10 + business 5
GRADE_B = {
    "seniority": "manager",
    "buying_role": "influencer",
    "employees": 120,
    "industry": "software",
    "country": "US",
    "email_type": "business",
}
BANT_OK = {"budget_usd": 50_000, "need": True, "timeline_months": 3}
# (type, points, how many, dedupe property): all fit their frequency and type caps at once
PIECES = (
    ("trial.signup", 20, 1, None),
    ("webinar.attended", 10, 1, "webinar_id"),  # a second one (the first is the mofu touch)
    ("product.activation", 10, 1, None),
    ("cart.abandoned", 10, 1, None),
    ("content.case_study_download", 8, 2, "asset_id"),
    ("webinar.registered", 4, 2, "webinar_id"),
    ("email.click", 3, 3, "message_id"),
    ("web.page_view", 1, 5, None),
)
MAX_PEAK = 10 + sum(points * count for _, points, count, _ in PIECES)
_ids = itertools.count(1)


def recipe(peak: int) -> list[tuple[str, dict[str, Any]]]:
    """Event types (with properties) whose points add up to exactly `peak`."""
    if not 10 <= peak <= MAX_PEAK:
        raise ValueError(f"peak {peak}: want 10..{MAX_PEAK}")
    out: list[tuple[str, dict[str, Any]]] = [("webinar.attended", {"webinar_id": "w-first"})]
    left = peak - 10
    for kind, points, count, prop in PIECES:
        for n in range(count):
            if points <= left:
                out.append((kind, {prop: f"{kind}-{n}"} if prop else {}))
                left -= points
    assert left == 0, (peak, left)
    return out


def event(kind: str, us: int, user: str, **fields: Any) -> dict[str, Any]:
    channel = {"email": "email", "sales": "crm", "trial": "product", "product": "product"}
    return {
        "event_id": f"ev-{next(_ids)}",
        "type": kind,
        "channel": channel.get(kind.split(".")[0], "crm" if kind == "identify" else "web"),
        "occurred_at": format_us(us),
        "user_id": user,
        **fields,
    }


def lead_events(
    user: str, peak: int, start_us: int, traits: dict[str, Any], delay_us: int = 60_000_000
) -> list[dict[str, Any]]:
    """One lead: identify with its profile, then (`delay_us` later, a minute by default) its
    burst of scoring events at one instant."""
    events = [event("identify", start_us, user, traits=traits)]
    burst = start_us + delay_us
    events.extend(event(kind, burst, user, properties=props) for kind, props in recipe(peak))
    return events


def sales_answer(
    user: str, at_us: int, accepted: bool, reason: str = "not_ready"
) -> list[dict[str, Any]]:
    """Sales' answer: accepted with BANT (so the lead becomes an SQL), or rejected."""
    if accepted:
        return [event("sales.accepted", at_us, user, traits=BANT_OK)]
    return [event("sales.rejected", at_us, user, properties={"reason": reason})]


def spread(index: int) -> int:
    """Start of lead `index`: leads spread over three weeks, a few hours apart."""
    return BASE_US + (index % 21) * US_PER_DAY + (index // 21) * 2 * HOUR_US


def by_time(events: list[dict[str, Any]]) -> list[str]:
    """Lines in event-time order (ties keep their order), as a collector would accept them."""
    ordered = sorted(enumerate(events), key=lambda ie: (parse_time(ie[1]["occurred_at"]), ie[0]))
    return [orjson.dumps(e).decode() for _, e in ordered]


def threshold_history() -> tuple[list[str], dict[str, tuple[str, int]]]:
    """Grade A leads with peaks 30..60 and grade B leads with peaks 40..60.

    Returns the lines and, by lead id, (grade, peak).
    """
    events: list[dict[str, Any]] = []
    known: dict[str, tuple[str, int]] = {}
    index = 0
    for grade, traits, peaks in (("A", GRADE_A, range(30, 61)), ("B", GRADE_B, range(40, 61))):
        for peak in peaks:
            user = f"u-{grade.lower()}{peak}"
            events.extend(lead_events(user, peak, spread(index), traits))
            known[user] = (grade, peak)
            index += 1
    return by_time(events), known


def outcome_history(
    cut: int = 50, peaks: range = range(30, 71)
) -> tuple[list[str], dict[str, int]]:
    """Grade A leads, one per peak; sales accepts (2 h after the MQL handoff, within its SLA)
    exactly the leads whose peak ≥ `cut` and rejects the others as not_ready 30 h later
    (after the 1-day SLA). Leads below 35 never reach sales and get no answer.
    """
    events: list[dict[str, Any]] = []
    known: dict[str, int] = {}
    for index, peak in enumerate(peaks):
        user = f"u-{peak}"
        start = spread(index)
        events.extend(lead_events(user, peak, start, GRADE_A))
        if peak >= 35:
            good = peak >= cut
            answer = start + (2 if good else 30) * HOUR_US
            events.extend(sales_answer(user, answer, good))
        known[user] = peak
    return by_time(events), known


def pace_history(slow_days: int = 5) -> tuple[list[str], dict[str, int]]:
    """Grade A leads: peaks 45..54 score a minute after their first touch, peaks 35..44 only
    `slow_days` later. Under A 35 all twenty become MQLs, under A 45 only the ten fast ones.

    Returns the lines and, by lead id, the days from first touch to MQL under A 35.
    """
    events: list[dict[str, Any]] = []
    known: dict[str, int] = {}
    for index, peak in enumerate(range(35, 55)):
        user = f"u-pace{peak}"
        delay = 60_000_000 if peak >= 45 else slow_days * US_PER_DAY
        events.extend(lead_events(user, peak, spread(index), GRADE_A, delay))
        known[user] = 0 if peak >= 45 else slow_days
    return by_time(events), known
