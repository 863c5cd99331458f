"""Small statistics for the review: Wilson intervals, F1, percentiles. Pure, no numpy needed.

Wilson's interval rather than the normal approximation: review bands often hold a handful of
leads, and the normal interval then leaves [0, 1] or collapses to a point at 0 % and 100 %.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Z95 = 1.959963984540054


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float] | None:
    """95 % Wilson score interval of a proportion; None without trials."""
    if trials <= 0:
        return None
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def ratio(part: int, whole: int) -> float | None:
    """part / whole, None when whole is 0 (a rate of nothing is unknown, not 0)."""
    return part / whole if whole else None


def f1(tp: int, fp: int, fn: int) -> float | None:
    """Harmonic mean of precision and recall; None when there is nothing to score."""
    denom = 2 * tp + fp + fn
    return 2 * tp / denom if denom else None


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 1]) of an already sorted, non-empty list."""
    if not sorted_values:
        raise ValueError("percentile of nothing")
    pos = q * (len(sorted_values) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)
