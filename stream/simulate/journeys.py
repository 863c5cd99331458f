"""Persona journeys over simulated days, and `build_journeys`: pure, seeded, reproducible.

Each script follows `scoring-model.md`: decision makers read, research on two days (streak),
go mid-funnel (case study, webinar) and only then look at pricing, so their pricing view is not
`early_pricing`; tyre-kickers stay in the awareness group; students and job seekers never ask
for sales; hand-raisers do at once (fast lane). Paths and event names are the collector's
contract: `/pricing`, `/product/...`, `/features/...`, `/platform`, `/careers`, `/jobs/...`,
`/blog/...`, `/`.
"""

from __future__ import annotations

import heapq
import json
import random
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from stream.errors import SettingsError
from stream.simulate import personas as p
from stream.simulate.messages import Journey, Message, Trail

SPAN_DAYS = 30
"""Every journey ends within this many days of the start (start spread + longest script)."""
SPREAD_DAYS = 7.0
"""Leads start their journeys uniformly over the first week."""

BLOG = (
    "what-is-lead-scoring",
    "mql-vs-sql",
    "bant-explained",
    "b2b-funnel-metrics",
    "intent-data-101",
    "sales-marketing-alignment",
    "nurture-playbook",
)
PRODUCT = (
    "/product/lead-scoring",
    "/product/routing",
    "/features/explainability",
    "/features/integrations",
    "/platform",
    "/product/security",
)
JOBS = ("/jobs/backend-engineer", "/jobs/account-executive", "/jobs/data-scientist")
Script = Callable[[Trail, random.Random], None]


def _blog(tr: Trail, rng: random.Random, k: int) -> None:
    for slug in rng.sample(BLOG, k):
        tr.page(f"/blog/{slug}")


def _products(tr: Trail, rng: random.Random, k: int) -> None:
    for path in rng.sample(PRODUCT, k):
        tr.page(path)


def _crm_outcome(tr: Trail, rng: random.Random, accept: float, reject: float) -> None:
    """Sales' answer a few days later: accepted with BANT from the call, or not ready."""
    roll = rng.random()
    if roll >= accept + reject:
        return
    tr.day((tr.now - tr.start).days + rng.randint(1, 3))
    if roll < accept:
        tr.crm("sales.accepted", {"crm": "simulated"}, p.bant(rng, qualified=True))
    else:
        tr.crm("sales.rejected", {"reason": "not_ready"})


def decision_maker(tr: Trail, rng: random.Random) -> None:
    engaged = rng.random() >= 0.25
    tr.day(0)
    tr.page("/")
    _blog(tr, rng, rng.randint(1, 3))
    tr.day(1)
    _blog(tr, rng, 1)
    tr.identify(tr.journey.traits)
    tr.track("Ebook Downloaded", {"asset_id": "ebook-lead-scoring-guide"})
    tr.day(2)
    tr.track("Email Opened", {"message_id": f"nurture-1-{tr.journey.user_id}"})
    _products(tr, rng, 2)
    second = rng.randint(3, 5)
    tr.day(second)  # a second calendar day of product research: journey.research_streak
    _products(tr, rng, 2 if engaged else 1)
    if not engaged:
        return
    tr.day(second + 1)
    tr.track("Email Link Clicked", {"message_id": f"nurture-2-{tr.journey.user_id}"})
    tr.track("Case Study Downloaded", {"asset_id": rng.choice(("cs-fintech", "cs-health"))})
    webinar = rng.choice(("webinar-scoring-live", "webinar-revops-2025"))
    tr.day(second + 3)
    tr.track("Webinar Registered", {"webinar_id": webinar})
    if rng.random() < 0.8:
        tr.day(second + 5)
        tr.track("Webinar Attended", {"webinar_id": webinar})
    tr.day(second + 6)  # pricing after mid-funnel touches: full points, not early_pricing
    tr.page("/pricing")
    tr.page("/product/security")
    if rng.random() < 0.5:  # pricing calculator form: BANT known, so MQL hands off at once
        tr.identify(p.bant(rng, qualified=True))
    if rng.random() < 0.4:
        tr.day(second + 7)
        tr.track("Trial Started", {"plan": "team"})
        tr.day(second + 8)
        tr.track("Product Activated", {"feature": "first_model"})
    _crm_outcome(tr, rng, accept=0.4, reject=0.2)


def manager(tr: Trail, rng: random.Random) -> None:
    tr.day(0)
    tr.page("/")
    _blog(tr, rng, 2)
    tr.day(1)
    tr.identify(tr.journey.traits)
    tr.track("Ebook Downloaded", {"asset_id": "ebook-funnel-metrics"})
    tr.day(2)
    tr.track("Email Opened", {"message_id": f"nurture-1-{tr.journey.user_id}"})
    tr.track("Social Engagement", {"network": "linkedin", "action": "like"})
    tr.day(3)
    _products(tr, rng, 2)
    tr.day(rng.randint(4, 6))
    _products(tr, rng, rng.randint(1, 2))
    if rng.random() < 0.5:
        return
    tr.day(7)
    tr.track("Case Study Downloaded", {"asset_id": "cs-retail"})
    tr.track("Webinar Registered", {"webinar_id": "webinar-revops-2025"})
    tr.day(9)
    tr.track("Webinar Attended", {"webinar_id": "webinar-revops-2025"})
    tr.page("/pricing")
    if rng.random() < 0.6:
        tr.day(10)
        tr.track("Trial Started", {"plan": "starter"})
        tr.day(11)
        tr.track("Product Activated", {"feature": "first_model"})
        if rng.random() < 0.3:
            tr.track("Cart Abandoned", {"plan": "team", "value_usd": 4800})
    _crm_outcome(tr, rng, accept=0.0, reject=0.25)


def student(tr: Trail, rng: random.Random) -> None:
    tr.day(0)
    tr.page("/")
    _blog(tr, rng, rng.randint(2, 4))
    tr.day(1)
    tr.identify(tr.journey.traits)
    for asset in rng.sample(("ebook-lead-scoring-guide", "ebook-funnel-metrics"), 2):
        tr.track("Ebook Downloaded", {"asset_id": asset})
    tr.day(3)
    tr.track("Webinar Registered", {"webinar_id": "webinar-scoring-live"})
    _products(tr, rng, 2)
    if rng.random() < 0.5:
        tr.page("/pricing")
    tr.day(5)
    _products(tr, rng, 1)
    if rng.random() < 0.5:
        tr.track("Webinar Attended", {"webinar_id": "webinar-scoring-live"})
    if rng.random() < 0.3:
        tr.day(7)
        tr.track("Trial Started", {"plan": "free"})


def job_seeker(tr: Trail, rng: random.Random) -> None:
    tr.day(0)
    tr.page("/")
    tr.page("/careers")
    for path in rng.sample(JOBS, rng.randint(1, 2)):
        tr.page(path)
    if rng.random() < 0.5:
        _blog(tr, rng, 1)
    tr.day(rng.randint(1, 3))
    tr.page("/careers")
    tr.page(rng.choice(JOBS))
    if rng.random() < 0.4:  # applied through a form that reuses the marketing identify call
        tr.identify(tr.journey.traits)
    if rng.random() < 0.1:
        _products(tr, rng, 1)


def tyre_kicker(tr: Trail, rng: random.Random) -> None:
    """Reads and opens a lot, never goes further: the awareness cap (25) keeps it below MQL."""
    tr.day(0)
    tr.page("/")
    _blog(tr, rng, 1)
    tr.identify(tr.journey.traits)  # newsletter sign-up
    for n, day in enumerate(sorted(rng.sample(range(1, 21), rng.randint(5, 9)))):
        tr.day(day)
        tr.track("Email Opened", {"message_id": f"newsletter-{day}-{tr.journey.user_id}"})
        if rng.random() < 0.5:
            tr.track("Email Link Clicked", {"message_id": f"newsletter-{day}-{tr.journey.user_id}"})
        tr.page("/")
        _blog(tr, rng, rng.randint(1, 4))
        if rng.random() < 0.3:
            tr.track("Social Engagement", {"network": "linkedin", "action": "share"})
        if n == 2 and rng.random() < 0.5:
            tr.track("Ebook Downloaded", {"asset_id": "ebook-sales-marketing-alignment"})
    if rng.random() < 0.1:
        tr.track("Unsubscribed", {"list": "newsletter"})


def hand_raiser(tr: Trail, rng: random.Random) -> None:
    """Asks for sales early, often right after a first (early) pricing view: the fast lane."""
    tr.day(0)
    tr.page("/")
    _products(tr, rng, rng.randint(1, 2))
    tr.page("/pricing")
    if rng.random() < 0.6:
        tr.day(rng.randint(1, 2))
        tr.page("/pricing")
    traits = dict(tr.journey.traits)
    if rng.random() < 0.4:
        traits |= p.bant(rng, qualified=True)
    tr.identify(traits)
    if rng.random() < 0.6:
        tr.track("Demo Requested", {"form_id": "demo-request"})
    else:
        tr.track("Contact Sales Form Submitted", {"form_id": "contact-sales"})
    _crm_outcome(tr, rng, accept=0.5, reject=0.15)


SCRIPTS: dict[str, Script] = {
    p.DECISION_MAKER: decision_maker,
    p.MANAGER: manager,
    p.STUDENT: student,
    p.JOB_SEEKER: job_seeker,
    p.TYRE_KICKER: tyre_kicker,
    p.HAND_RAISER: hand_raiser,
}


def default_start(now: datetime | None = None) -> datetime:
    """Now minus the journey span, so the last simulated events land just before now."""
    return (now or datetime.now(UTC)) - timedelta(days=SPAN_DAYS)


def build_journeys(
    leads: int, seed: int, start: datetime, *, weights: Mapping[str, float] | None = None
) -> list[Journey]:
    """`leads` journeys, personas in exact proportion to `weights`; same arguments, same output.

    Each lead draws from its own generator seeded by (seed, index), so lead i's journey does not
    change when `leads` grows. A naive `start` is taken as UTC.
    """
    if leads < 0:
        raise SettingsError(f"leads={leads}: want 0 or more")
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    order = p.allocate(leads, weights or p.DEFAULT_WEIGHTS, random.Random(f"ls-sim/{seed}"))
    journeys = []
    for index, persona in enumerate(order):
        rng = random.Random(f"ls-sim/{seed}/{index}")
        traits: dict[str, Any] = p.profile(persona, rng, index)
        anonymous_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        journey = Journey(f"sim-{seed}-{index:06d}", persona, anonymous_id, traits)
        lead_start = start + timedelta(days=rng.uniform(0, SPREAD_DAYS))
        SCRIPTS[persona](Trail(seed, journey, lead_start, rng), rng)
        journeys.append(journey)
    return journeys


def ordered_messages(journeys: Iterable[Journey]) -> list[Message]:
    """All messages merged by event time; ties keep journey order, each journey its own order."""
    return list(heapq.merge(*(j.messages for j in journeys), key=lambda m: m.at))


def write_journeys(journeys: Iterable[Journey], path: Path) -> int:
    """One JSON line per journey (ids, persona, traits, Segment messages); returns the count.

    The journeys carry simulated names and emails and run to megabytes, so they are written only
    where the user asks, for replaying or inspecting a run; stdout gets a summary.
    """
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for journey in journeys:
            row = {
                "user_id": journey.user_id,
                "persona": journey.persona,
                "anonymous_id": journey.anonymous_id,
                "traits": journey.traits,
                "messages": [m.body for m in journey.messages],
            }
            out.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
            count += 1
    return count
