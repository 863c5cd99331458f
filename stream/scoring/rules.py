"""Dedupe, frequency caps, and type/group/engagement caps at evaluation time (sections 3–4)."""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from typing import Any

from stream.scoring.events import US_PER_DAY
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
    """Per-type decayed sums at t_us, each clamped to its type cap (unknown types skipped).

    `value_at` and `clamp_cap` written out, the same arithmetic: every stage decision and
    snapshot asks for these.
    """
    out: dict[str, float] = {}
    types = model.types
    for name, (value, ref) in state.acc.items():
        rule = types.get(name)
        if rule is None:
            continue
        half_life, dt = rule.half_life, t_us - int(ref)
        value = value * (
            1.0 if half_life is None or dt == 0 else 0.5 ** (dt / US_PER_DAY / half_life)
        )
        cap = rule.cap
        if cap is not None:
            if cap >= 0:
                if cap < value:
                    value = cap
            elif cap > value:
                value = cap
        out[name] = value
    return out


def group_values(types: Mapping[str, float], model: Model) -> dict[str, float]:
    """Per-group sums of type values, clamped to the group caps; every group present."""
    caps = model.groups
    sums = dict.fromkeys(caps, 0.0)
    rules = model.types
    for name, value in types.items():
        sums[rules[name].group] += value
    for group, value in sums.items():
        cap = caps[group]
        if cap is not None:
            if cap >= 0:
                if cap < value:
                    sums[group] = cap
            elif cap > value:
                sums[group] = cap
    return sums


def engagement_of(groups: Mapping[str, float], model: Model) -> float:
    """clamp(sum of groups, engagement min, engagement max)."""
    return min(model.eng_max, max(model.eng_min, sum(groups.values())))


def engagement(state: LeadState, model: Model, t_us: int) -> float:
    """The lead's engagement score at t_us."""
    return engagement_of(group_values(type_values(state, model, t_us), model), model)
