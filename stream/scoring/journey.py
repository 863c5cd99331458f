"""Journey rules: early pricing, research streak and the mid-funnel guard (section 5)."""

from __future__ import annotations

import bisect

from stream.scoring.model import Model, TypeRule
from stream.scoring.state import LeadState


def is_early_pricing(state: LeadState, t_us: int, model: Model) -> bool:
    """A scored pricing view at t is early if (a) or (b) holds.

    (a) fewer than 3 earlier scored entries of a non-negative group (whole history; kept as a
    capped counter); (b) no scored consideration entry other than a pricing view (a streak
    counts) with t_i in (t - 30, t].
    """
    j = model.journey
    if state.prior < j.early_min_prior:
        return True
    low = t_us - j.early_window_us
    for name, times in state.times.items():
        rule = model.types.get(name)
        if rule is None or rule.group != j.early_window_group or name == j.early_type:
            continue
        first = bisect.bisect_right(times, low)  # times are sorted (state.add_time)
        if first < len(times) and times[first] <= t_us:
            return False
    return True


def streak_due(state: LeadState, t_us: int, model: Model) -> bool:
    """After a scored product view at t (already recorded): >= 2 distinct calendar dates among
    scored product views with t_i in (t - 7, t]."""
    j = model.journey
    times = state.times.get(j.streak_trigger, [])
    window = times[
        bisect.bisect_right(times, t_us - j.streak_window_us) : bisect.bisect_right(times, t_us)
    ]
    days = {model.local_day(x) for x in window}
    return len(days) >= j.streak_min_days


def note_scored(
    state: LeadState, rule: TypeRule, t_us: int, tags: tuple[str, ...], model: Model
) -> None:
    """Update the journey counters for a scored entry (prior count, mid-funnel touch)."""
    j = model.journey
    if rule.group in j.early_prior_groups and state.prior < j.early_min_prior:
        state.prior += 1
    mid_funnel = rule.group in j.mofu_groups and j.mofu_exclude_tag not in tags
    if mid_funnel and (state.mofu_last is None or t_us > state.mofu_last):
        state.mofu_last = t_us


def mofu_guard(state: LeadState, t_us: int, model: Model) -> bool:
    """A non-early consideration/decision entry in (T - 30, T], after the last recycle.

    The latest such entry decides: every entry is at or before the lead's clock <= T.
    """
    last = state.mofu_last
    if last is None or last <= t_us - model.journey.mofu_window_us:
        return False
    return state.recycled_at is None or last > state.recycled_at
