"""Dedupe, frequency caps, and type/group/engagement caps at evaluation time (sections 3–4)."""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from typing import Any

from stream.scoring.decay import value_at
from stream.scoring.model import Model, TypeRule
from stream.scoring.state import LeadState, has_key


def dedupe_value(rule: TypeRule, properties: Mapping[str, Any]) -> str | None:
    """The event's dedupe-key value, or None (no key field: never a duplicate)."""
    if rule.dedupe_key is None:
        return None
    value = properties.get(rule.dedupe_key)
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)


def is_duplicate(state: LeadState, rule: TypeRule, key: str | None) -> bool:
    """An earlier event of the same type (scored or suppressed) carried the same key value."""
    return key is not None and has_key(state, rule.name, key)


def freq_capped(state: LeadState, rule: TypeRule, t_us: int, model: Model) -> bool:
    """`N per W`: N earlier *scored* entries of the type in (t - W, t] or on t's calendar date.

    An entry exactly W earlier is outside. A calendar day counts every scored entry of that
    local date, including ones stamped later the same day (applied earlier).
    """
    freq = rule.freq
    if freq is None:
        return False
    times = state.times.get(rule.name)
    if not times:
        return False
    # `times` is sorted (state.add_time): count the window by bisection
    if freq.window_us is None:
        start, end = model.day_bounds(t_us)
        count = bisect.bisect_left(times, end) - bisect.bisect_left(times, start)
    else:
        count = bisect.bisect_right(times, t_us) - bisect.bisect_right(times, t_us - freq.window_us)
    return count >= freq.count


def clamp_cap(value: float, cap: float | None) -> float:
    """Positive caps are maxima, negative caps minima, None uncapped."""
    if cap is None:
        return value
    if cap >= 0:
        return min(value, cap)
    return max(value, cap)


def type_values(state: LeadState, model: Model, t_us: int) -> dict[str, float]:
    """Per-type decayed sums at t_us, each clamped to its type cap (unknown types skipped)."""
    out: dict[str, float] = {}
    types = model.types
    for name, acc in state.acc.items():
        rule = types.get(name)
        if rule is not None:
            out[name] = clamp_cap(value_at(acc, t_us, rule.half_life), rule.cap)
    return out


def group_values(types: Mapping[str, float], model: Model) -> dict[str, float]:
    """Per-group sums of type values, clamped to the group caps; every group present."""
    sums = dict.fromkeys(model.groups, 0.0)
    rules = model.types
    for name, value in types.items():
        sums[rules[name].group] += value
    return {g: clamp_cap(v, model.groups[g]) for g, v in sums.items()}


def engagement_of(groups: Mapping[str, float], model: Model) -> float:
    """clamp(sum of groups, engagement min, engagement max)."""
    return min(model.eng_max, max(model.eng_min, sum(groups.values())))


def engagement(state: LeadState, model: Model, t_us: int) -> float:
    """The lead's engagement score at t_us."""
    return engagement_of(group_values(type_values(state, model, t_us), model), model)
