"""Wilson intervals and friends, against values worked out by hand."""

from __future__ import annotations

import pytest

from stream.reports.stats import f1, percentile, ratio, wilson


def test_wilson_known_values() -> None:
    low, high = wilson(8, 10) or (0.0, 0.0)
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)
    low, high = wilson(0, 10) or (1.0, 1.0)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    assert wilson(0, 0) is None


def test_ratio_f1_percentile() -> None:
    assert ratio(1, 0) is None and ratio(1, 4) == 0.25
    assert f1(0, 0, 0) is None and f1(3, 1, 1) == pytest.approx(0.75)
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([5.0], 0.975) == 5.0
    with pytest.raises(ValueError):
        percentile([], 0.5)
