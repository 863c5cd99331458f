"""Half-life decay at evaluation time, and the per-type decayed sum kept in lead state."""

from __future__ import annotations

from stream.scoring.events import US_PER_DAY


def factor(dt_us: int, half_life: float | None) -> float:
    """0.5^(dt / half_life) for dt in microseconds, half_life in days; 1 with no half-life."""
    if half_life is None or dt_us == 0:
        return 1.0
    result: float = 0.5 ** (dt_us / US_PER_DAY / half_life)
    return result


def decayed(value: float, dt_us: int, half_life: float | None) -> float:
    """A value `dt_us` later."""
    return value * factor(dt_us, half_life)


def accumulate(
    acc: list[float] | None, base: float, t_us: int, half_life: float | None
) -> list[float]:
    """Add an entry (base points at t_us) to a decayed sum [value, ref_us].

    The sum is kept at ref = the latest entry time, so evaluating at any T >= ref needs one
    multiplication. An entry earlier than ref (a late event) is decayed forward to ref.
    """
    if acc is None:
        return [base, t_us]
    value, ref = acc[0], int(acc[1])
    if t_us >= ref:
        return [decayed(value, t_us - ref, half_life) + base, t_us]
    return [value + decayed(base, ref - t_us, half_life), ref]


def value_at(acc: list[float], t_us: int, half_life: float | None) -> float:
    """The decayed sum at t_us (t_us >= ref; see LeadState for why earlier is not needed)."""
    return decayed(acc[0], t_us - int(acc[1]), half_life)
