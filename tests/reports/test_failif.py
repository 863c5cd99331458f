"""--fail-if: a table of expressions and what they give, and what is refused."""

from __future__ import annotations

import pytest

from stream.reports.errors import ReportError
from stream.reports.failif import FailIf

NAMES = ("mql_change_pct", "leads_changed", "mql_change", "baseline_mqls")
METRICS = {"mql_change_pct": 25.0, "leads_changed": 3, "mql_change": -2, "baseline_mqls": 0}


@pytest.mark.parametrize(
    ("text", "holds"),
    [
        ("mql_change_pct > 20", True),
        ("mql_change_pct > 25", False),
        ("mql_change_pct >= 25", True),
        ("mql_change_pct > 20 and leads_changed > 5", False),
        ("mql_change_pct > 30 or leads_changed > 2", True),
        ("not leads_changed > 2", False),
        ("abs(mql_change) >= 2", True),
        ("-mql_change == 2", True),
        ("0 < leads_changed < 4", True),
        ("mql_change / baseline_mqls > 1", False),  # -2 / 0: -inf, not an error
        ("leads_changed * 2 + 1 != 7", False),
    ],
)
def test_expressions(text: str, holds: bool) -> None:
    assert FailIf(text, NAMES).holds(METRICS) is holds


def test_a_percentage_of_nothing_counts_as_unbounded() -> None:
    gate = FailIf("mql_change_pct > 20", NAMES)
    assert gate.holds({**METRICS, "mql_change_pct": None})
    assert "mql_change_pct = n/a" in gate.explain({"mql_change_pct": None})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mql_change_pct >", "not an expression"),
        ("mql_change_pct", "want a condition"),
        ("leads > 2", "unknown metric 'leads'"),
        ("open('x') > 1", "only abs(x) may be called"),
        ("mql_change_pct.real > 1", "Attribute is not allowed"),
        ("mql_change_pct ** 2 > 1", "only + - * / are allowed"),
        ("mql_change_pct in [1]", "only > >= < <= == != compare"),
        ("'a' > 1", "is not a number"),
        ("(lambda: 1)() > 0", "only abs(x) may be called"),
    ],
)
def test_refused(text: str, message: str) -> None:
    with pytest.raises(ReportError, match="--fail-if") as info:
        FailIf(text, NAMES)
    assert message in str(info.value)
