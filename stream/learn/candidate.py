"""The learned weights as a model file in today's schema: rounded, versioned, explained.

Only points change: each event type's points (its type cap scaled alike, so the cap still
allows the same number of recent events) and each fit table entry's points. Groups, caps of
groups, half-lives, windows, thresholds and routes stay as they are: they are decisions of
sales and marketing, not something outcomes can estimate. A type keeps the sign of its group
(engagement groups earn points, the negative group costs them): a learned value across zero
becomes 0, "no evidence this counts", rather than a positive signal turned negative.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from stream.learn.features import Decision, attribute_keys
from stream.scoring.fit import grade, normalize
from stream.scoring.model import Model, ModelError, parse_model

NEGATIVE_GROUP = "negative"
UNGRADED_MARGIN = 200.0
"""How far below every graded lead a lead of a grade without threshold ranks."""


def person_round(value: float) -> float:
    """What a person would write: whole points, and steps of 5 from 20 up."""
    step = 5 if abs(value) >= 20 else 1
    return float(step * round(value / step))


def final_points(model: Model, learned: Mapping[str, float]) -> dict[str, float]:
    """Event type -> points to write: learned (else today's), sign of its group, rounded."""
    out: dict[str, float] = {}
    for name, rule in model.types.items():
        value = learned.get(name, rule.points)
        value = min(0.0, value) if rule.group == NEGATIVE_GROUP else max(0.0, value)
        out[name] = person_round(value) + 0.0  # no -0.0 in the file
    return out


def final_fit(current: Mapping[str, float], learned: Mapping[str, float]) -> dict[str, float]:
    return {key: person_round(learned.get(key, value)) + 0.0 for key, value in current.items()}


def next_version(version: str) -> str:
    """1.0.0 -> 1.1.0 (a learned model is a new minor version of the one it learned from)."""
    found = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)(.*)", version)
    if not found:
        return f"{version}-learned"
    return f"{found[1]}.{int(found[2]) + 1}.0"


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def candidate_raw(
    model: Model, points: Mapping[str, float], fit_points: Mapping[str, float]
) -> dict[str, Any]:
    """The current model's file with the new points and version."""
    raw = copy.deepcopy(model.raw)
    raw["version"] = next_version(model.version)
    for name, spec in raw["event_types"].items():
        old, new = float(spec["points"]), points[name]
        spec["points"] = _number(new)
        cap = spec.get("type_cap")
        if cap is not None and old != 0 and new != 0:
            scaled = person_round(cap * new / old)
            if abs(scaled) < abs(new):
                scaled = new
            spec["type_cap"] = _number(scaled)
    keys = iter(attribute_keys(model))
    for attr in model.fit_attributes:
        spec = raw["fit"]["attributes"][attr.name]
        if attr.ranges:
            for item in spec["ranges"]:
                item["points"] = _number(fit_points[next(keys)])
        else:
            by_key = {normalize(k): k for k in spec["points"]}
            for value in attr.points:
                key = next(keys)
                spec["points"][by_key.get(value, value)] = _number(fit_points[key])
    return raw


def model_text(raw: Mapping[str, Any], comment: Sequence[str]) -> str:
    """YAML with the comment block on top (each line of `comment` a `#` line)."""
    head = "".join(f"# {line}".rstrip() + "\n" for line in comment)
    body = yaml.safe_dump(
        dict(raw), sort_keys=False, default_flow_style=None, allow_unicode=True, width=100
    )
    return head + body


def build(raw: Mapping[str, Any], comment: Sequence[str], source: str) -> tuple[str, Model]:
    """The file's text and the model it loads as (checked exactly as any model file)."""
    text = model_text(raw, comment)
    try:
        return text, parse_model(text, source)
    except ModelError as exc:  # a bug here, never the user's input
        raise AssertionError(f"the candidate model does not load: {exc}") from None


def margin(decision: Decision, model: Model, current: Model | None = None) -> float:
    """How far the decision is over its grade's MQL threshold under `model`, from the
    features (the engine's per-type units); grades without a threshold rank below all.

    With `current` given, engagement and fit are recomputed with `model`'s points from the
    units and profile entries the current model saw (a lead whose fit an override set keeps
    it); without, the decision's own numbers are used (they are the current model's)."""
    if current is None:
        engagement, fit = decision.engagement, decision.fit
    else:
        engagement, fit = _rescored(decision, model, current)
    threshold = model.rules.mql_thresholds.get(grade(fit, model))
    return engagement - threshold if threshold is not None else engagement - UNGRADED_MARGIN


def _fit_points(model: Model) -> dict[str, float]:
    from stream.learn.fit import current_fit_points

    return current_fit_points(model)


def _rescored(decision: Decision, model: Model, current: Model) -> tuple[float, float]:
    sums = dict.fromkeys(model.groups, 0.0)
    for name, units in decision.units.items():
        rule = model.types.get(name)
        if rule is not None:
            sums[rule.group] += rule.points * units
    for group, cap in model.groups.items():
        if cap is not None:
            sums[group] = min(sums[group], cap) if cap >= 0 else max(sums[group], cap)
    engagement = min(model.eng_max, max(model.eng_min, sum(sums.values())))
    now, new = _fit_points(current), _fit_points(model)
    r = current.rules
    plain = min(r.fit_max, max(r.fit_min, sum(now[a] for a in decision.attributes)))
    if abs(plain - decision.fit) > 1e-9:  # an override (competitor, embargo) set it
        return engagement, decision.fit
    fit = sum(new[a] for a in decision.attributes)
    return engagement, min(model.rules.fit_max, max(model.rules.fit_min, fit))
