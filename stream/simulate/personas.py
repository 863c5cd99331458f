"""Who the simulated leads are: persona weights, profiles (identify traits) and allocation.

Profiles use the scoring model's trait names directly (`scoring-model.md`, section 2), so a
persona's fit grade is known in advance: decision makers grade A, managers B, hand-raisers A to
C, students and job seekers D, tyre-kickers anything (the awareness cap, not fit, stops them).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from stream.errors import SettingsError

DECISION_MAKER = "decision_maker"
MANAGER = "manager"
STUDENT = "student"
JOB_SEEKER = "job_seeker"
TYRE_KICKER = "tyre_kicker"
HAND_RAISER = "hand_raiser"

# Share of each persona among the simulated leads; any positive numbers, normalised on use.
DEFAULT_WEIGHTS: dict[str, float] = {
    DECISION_MAKER: 0.15,
    MANAGER: 0.20,
    STUDENT: 0.15,
    JOB_SEEKER: 0.10,
    TYRE_KICKER: 0.25,
    HAND_RAISER: 0.15,
}
PERSONAS = tuple(DEFAULT_WEIGHTS)

TARGET_COUNTRIES = ("US", "US", "US", "DE", "GB", "CA", "FR", "NL", "AU")
OTHER_COUNTRIES = ("IN", "BR", "ES", "PL", "MX", "JP")
PRIMARY_INDUSTRIES = ("software", "financial_services", "healthcare")
SECONDARY_INDUSTRIES = ("manufacturing", "retail")
FREE_DOMAINS = ("gmail.com", "outlook.com", "yahoo.com", "proton.me")
_FIRST = ("alex", "maria", "jonas", "priya", "chen", "sofia", "liam", "amara", "noah", "lena")
_LAST = ("schmidt", "garcia", "smith", "kumar", "okafor", "rossi", "nguyen", "meyer", "brown")
_COMPANY_A = ("north", "blue", "bright", "iron", "silver", "clear", "rapid", "summit", "delta")
_COMPANY_B = ("wind", "ledger", "harbor", "peak", "forge", "metrics", "health", "stack", "leaf")
_TITLES = {
    "c_level": ("Chief Revenue Officer", "CTO", "CFO", "Chief Marketing Officer"),
    "vp": ("VP Sales", "VP Marketing", "VP Engineering", "VP Revenue Operations"),
    "director": ("Director of Marketing", "Director of Sales"),
    "manager": ("Marketing Manager", "Sales Operations Manager", "Demand Generation Manager"),
    "individual_contributor": ("Software Engineer", "Marketing Specialist", "Data Analyst"),
    "student": ("Student", "MBA Candidate"),
    "intern": ("Marketing Intern", "Sales Intern"),
}


def parse_weights(text: str) -> dict[str, float]:
    """`decision_maker=2,student=1` -> weights; personas left out keep their default weight."""
    weights = dict(DEFAULT_WEIGHTS)
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, raw = item.partition("=")
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not sep or value < 0:
            raise SettingsError(f"persona weight {item!r}: want name=number, e.g. student=0.2")
        weights[name.strip()] = value
    check_weights(weights)
    return weights


def check_weights(weights: Mapping[str, float]) -> None:
    unknown = sorted(set(weights) - set(PERSONAS))
    if unknown:
        raise SettingsError(f"unknown personas {unknown}: want some of {', '.join(PERSONAS)}")
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise SettingsError(f"persona weights {dict(weights)}: want numbers >= 0, not all 0")


def allocate(leads: int, weights: Mapping[str, float], rng: random.Random) -> list[str]:
    """Exactly proportional persona counts (largest remainder), in a seeded random order.

    Exact counts instead of independent draws keep small simulations representative: 20 leads
    with default weights always hold 3 decision makers, never 0 by bad luck.
    """
    check_weights(weights)
    total = sum(weights.values())
    shares = {p: leads * weights.get(p, 0.0) / total for p in PERSONAS}
    counts = {p: int(s) for p, s in shares.items()}
    by_remainder = sorted(PERSONAS, key=lambda p: (-(shares[p] - counts[p]), PERSONAS.index(p)))
    for persona in by_remainder[: leads - sum(counts.values())]:
        counts[persona] += 1
    order = [p for p in PERSONAS for _ in range(counts[p])]
    rng.shuffle(order)
    return order


def _person(rng: random.Random, domain: str, n: int) -> tuple[str, str]:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    return f"{first.title()} {last.title()}", f"{first}.{last}{n}@{domain}"


def _company(rng: random.Random) -> tuple[str, str]:
    a, b = rng.choice(_COMPANY_A), rng.choice(_COMPANY_B)
    return f"{a.title()}{b.title()}", f"{a}{b}.com"


def profile(persona: str, rng: random.Random, n: int) -> dict[str, Any]:
    """Identify traits for one lead of `persona`; `n` keeps emails unique within a run."""
    company, domain = _company(rng)
    traits: dict[str, Any]
    if persona == DECISION_MAKER:
        traits = {
            "seniority": rng.choice(("c_level", "vp", "vp")),
            "buying_role": "decision_maker",
            "employees": rng.randint(201, 5000),
            "industry": rng.choice(PRIMARY_INDUSTRIES),
            "country": rng.choice(TARGET_COUNTRIES),
            "email_type": "business",
            "tech_fit": rng.random() < 0.5,
        }
    elif persona == MANAGER:
        traits = {
            "seniority": "manager",
            "buying_role": rng.choice(("influencer", "user")),
            "employees": rng.randint(51, 200),
            "industry": rng.choice(PRIMARY_INDUSTRIES + SECONDARY_INDUSTRIES),
            "country": rng.choice(TARGET_COUNTRIES),
            "email_type": "business",
        }
    elif persona == HAND_RAISER:
        grade = rng.choices(("A", "B", "C"), (5, 3, 2))[0]
        traits = {
            "seniority": {"A": "director", "B": "manager", "C": "individual_contributor"}[grade],
            "buying_role": {"A": "decision_maker", "B": "influencer", "C": "user"}[grade],
            "employees": {"A": 800, "B": 120, "C": 55}[grade] + rng.randint(0, 20),
            "industry": rng.choice(PRIMARY_INDUSTRIES if grade != "C" else ("other",)),
            "country": rng.choice(TARGET_COUNTRIES),
            "email_type": "business",
        }
    elif persona == TYRE_KICKER:
        traits = {
            "seniority": rng.choice(("c_level", "vp", "director", "manager")),
            "employees": rng.choice((25, 150, 600, 2500)),
            "industry": rng.choice(PRIMARY_INDUSTRIES + SECONDARY_INDUSTRIES),
            "country": rng.choice(TARGET_COUNTRIES),
            "email_type": "business",
        }
    elif persona == STUDENT:
        domain = rng.choice(FREE_DOMAINS)
        company = rng.choice(("State University", "Business School", "Technical University"))
        traits = {
            "seniority": rng.choice(("student", "student", "intern")),
            "industry": "education",
            "country": rng.choice(TARGET_COUNTRIES + OTHER_COUNTRIES),
            "email_type": "free",
        }
    elif persona == JOB_SEEKER:
        domain = rng.choice(FREE_DOMAINS)
        company = ""
        traits = {
            "seniority": "individual_contributor",
            "country": rng.choice(TARGET_COUNTRIES + OTHER_COUNTRIES),
            "email_type": "free",
        }
    else:
        raise SettingsError(f"unknown persona {persona!r}: want one of {', '.join(PERSONAS)}")
    name, email = _person(rng, domain, n)
    titles = _TITLES.get(traits["seniority"], ("Consultant",))
    extra: dict[str, Any] = {"email": email, "name": name, "title": rng.choice(titles)}
    if company:
        extra["company"] = {"name": company}  # Segment spec: company is an object
    return extra | traits


def bant(rng: random.Random, *, qualified: bool) -> dict[str, Any]:
    """BANT traits as a form or CRM would state them; `qualified` means Budget, Need, Timeline."""
    if qualified:
        return {
            "budget_usd": rng.choice((15_000, 25_000, 50_000, 120_000)),
            "budget_confirmed": rng.random() < 0.5,
            "need": True,
            "timeline_months": rng.choice((1, 3, 6)),
        }
    return {
        "budget_usd": rng.choice((2_000, 5_000)),
        "need": rng.random() < 0.5,
        "timeline_months": rng.choice((9, 12, 18)),
    }
