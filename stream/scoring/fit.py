"""Fit score, grade, account (company) fit and BANT, all from the lead's profile traits."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from stream.scoring.model import FitAttribute, Model

BANT_KEYS = ("budget", "authority", "need", "timeline")


def normalize(value: Any) -> str | None:
    """Trait value -> lookup key: lower case, '-' and ' ' as '_', booleans as 'true'/'false'."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip().lower().replace("-", "_").replace(" ", "_")


def _attribute_points(attr: FitAttribute, value: Any) -> tuple[float, float | None]:
    """(points, override) of one attribute value; unknown values score 0."""
    if value is None:
        return 0.0, None
    if attr.ranges:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return 0.0, None
        for low, high, points in attr.ranges:
            if value >= low and (high is None or value <= high):
                return points, None
        return 0.0, None
    key = normalize(value)
    if key is None:
        return 0.0, None
    if key in attr.override:
        return 0.0, attr.override[key]
    return attr.points.get(key, 0.0), None


def _score(profile: Mapping[str, Any], model: Model, attrs: Iterable[FitAttribute]) -> float:
    rules = model.rules
    total = 0.0
    override: float | None = None
    for attr in attrs:
        points, forced = _attribute_points(attr, profile.get(attr.name))
        total += points
        if forced is not None:
            override = forced if override is None else min(override, forced)
    if override is not None:
        total = override
    return min(rules.fit_max, max(rules.fit_min, total))


def fit_score(profile: Mapping[str, Any], model: Model) -> float:
    """fit = clamp(sum of attribute points, min, max); an override (competitor, embargo) wins."""
    return _score(profile, model, model.fit_attributes)


def company_fit(profile: Mapping[str, Any], model: Model) -> float:
    """The account fit: the company attributes only (employees, industry, country, tech)."""
    attrs = (a for a in model.fit_attributes if a.name in model.company_attributes)
    return _score(profile, model, attrs)


def grade(fit: float, model: Model) -> str:
    """A >= 70, B >= 45, C >= 25, else D (thresholds from the model)."""
    for letter, minimum in model.rules.grades:
        if fit >= minimum:
            return letter
    return model.rules.default_grade


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def bant(profile: Mapping[str, Any], model: Model) -> dict[str, bool | None]:
    """Each BANT element true, false or unknown (None); docs/scoring.md lists the choices."""
    r = model.rules
    confirmed = profile.get(r.budget_confirmed)
    amount = _number(profile.get(r.budget_amount))
    budget: bool | None = None
    if confirmed is True or (amount is not None and amount >= r.budget_min):
        budget = True
    elif confirmed is False or amount is not None:
        budget = False
    seniority = normalize(profile.get("seniority"))
    role = normalize(profile.get("buying_role"))
    authority: bool | None = None
    if seniority in r.authority_seniority or role in r.authority_roles:
        authority = True
    elif (seniority not in (None, "unknown")) or (role not in (None, "unknown")):
        authority = False
    need_value = profile.get(r.need_trait)
    need: bool | None = None
    if isinstance(need_value, bool):
        need = need_value
    elif isinstance(need_value, str) and need_value.strip():
        need = True
    months = _number(profile.get(r.timeline_trait))
    timeline = None if months is None else months <= r.timeline_max
    return {"budget": budget, "authority": authority, "need": need, "timeline": timeline}


def bant_true_count(values: Mapping[str, bool | None]) -> int:
    """How many BANT elements are known true."""
    return sum(1 for v in values.values() if v is True)


def sql_ready(values: Mapping[str, bool | None]) -> bool:
    """Need and Timeline and (Budget or Authority) — the BANT part of the SQL rule."""
    return (
        values["need"] is True
        and values["timeline"] is True
        and (values["budget"] is True or values["authority"] is True)
    )
