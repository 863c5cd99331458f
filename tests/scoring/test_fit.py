"""Fit table, grades, overrides, account fit and BANT (sections 2 and 7)."""

from __future__ import annotations

from typing import Any

import pytest

from stream.scoring import Model
from stream.scoring.fit import bant, bant_true_count, company_fit, fit_score, grade, sql_ready

from .helpers import TRAITS_A, TRAITS_B, TRAITS_C, TRAITS_D


@pytest.mark.parametrize(
    ("profile", "fit", "letter"),
    [
        (TRAITS_A, 85, "A"),  # 25+10+20+15+10+5
        (TRAITS_B, 52, "B"),  # 12+5+12+8+10+5
        (TRAITS_C, 29, "C"),  # 4+5+15+5
        (TRAITS_D, -5, "D"),  # -20+15
        ({}, 0, "D"),
        ({"seniority": "C-Level", "employees": 5000, "country": "us"}, 65, "B"),  # 30+25+10
        (
            {
                "seniority": "c_level",
                "buying_role": "decision_maker",
                "employees": 2000,
                "industry": "software",
                "country": "DE",
                "email_type": "business",
                "tech_fit": True,
            },
            100,
            "A",
        ),  # 30+10+25+15+10+5+5 = 100
        ({"seniority": "founder", "employees": 10, "industry": "retail"}, 38, "C"),  # 30+0+8
        (
            {"seniority": "director", "employees": 11, "industry": "healthcare", "country": "GB"},
            50,
            "B",
        ),  # 20+5+15+10
        (
            {"seniority": "owner", "employees": 201, "industry": "software", "country": "CA"},
            75,
            "A",
        ),  # 30+20+15+10
        (
            {
                "seniority": "director",
                "employees": 1000,
                "industry": "software",
                "email_type": "free",
            },
            45,
            "B",
        ),  # 20+20+15-10 = 45: B at its edge
        ({"seniority": "manager", "employees": 51, "email_type": "business"}, 29, "C"),
        ({"seniority": "manager", "employees": 50, "email_type": "free"}, 7, "D"),  # 12+5-10
        ({"seniority": "intern", "email_type": "disposable"}, -70, "D"),  # -20-50
        (
            {"industry": "competitor", **{k: v for k, v in TRAITS_A.items() if k != "industry"}},
            -100,
            "D",
        ),
        ({**TRAITS_A, "country": "IR"}, -100, "D"),  # embargoed
        ({"employees": 0, "seniority": "wizard", "tech_fit": False}, 0, "D"),  # unknown → 0
    ],
)
def test_fit_table(model: Model, profile: dict[str, Any], fit: float, letter: str) -> None:
    assert fit_score(profile, model) == fit
    assert grade(fit_score(profile, model), model) == letter


@pytest.mark.parametrize(
    ("fit", "letter"),
    [(70, "A"), (69.9, "B"), (45, "B"), (44, "C"), (25, "C"), (24.9, "D"), (-100, "D")],
)
def test_grade_edges(model: Model, fit: float, letter: str) -> None:
    assert grade(fit, model) == letter


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        (TRAITS_A, 45),  # employees 20 + software 15 + US 10
        ({"employees": 5000, "industry": "software", "country": "US", "tech_fit": True}, 55),
        ({"industry": "competitor", "employees": 5000}, -100),
        ({"country": "KP", "employees": 5000}, -100),
        ({"seniority": "vp"}, 0),  # person attributes do not count
    ],
)
def test_company_fit(model: Model, profile: dict[str, Any], expected: float) -> None:
    assert company_fit(profile, model) == expected


N = None


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        ({}, (N, N, N, N)),
        ({"budget_confirmed": True}, (True, N, N, N)),
        ({"budget_usd": 10_000}, (True, N, N, N)),  # ≥ 10,000
        ({"budget_usd": 9_999}, (False, N, N, N)),  # a smaller budget is known
        ({"budget_usd": 5_000, "budget_confirmed": True}, (True, N, N, N)),
        ({"budget_confirmed": False}, (False, N, N, N)),
        ({"seniority": "director"}, (N, True, N, N)),
        ({"seniority": "manager"}, (N, False, N, N)),
        ({"seniority": "manager", "buying_role": "decision_maker"}, (N, True, N, N)),
        ({"buying_role": "influencer"}, (N, False, N, N)),
        ({"seniority": "unknown"}, (N, N, N, N)),
        ({"need": True}, (N, N, True, N)),
        ({"need": "replace our spreadsheets"}, (N, N, True, N)),
        ({"need": False}, (N, N, False, N)),
        ({"timeline_months": 6}, (N, N, N, True)),
        ({"timeline_months": 7}, (N, N, N, False)),
        ({"timeline_months": 0}, (N, N, N, True)),
    ],
)
def test_bant(model: Model, profile: dict[str, Any], expected: tuple[Any, ...]) -> None:
    values = bant(profile, model)
    assert tuple(values[k] for k in ("budget", "authority", "need", "timeline")) == expected


@pytest.mark.parametrize(
    ("values", "count", "sql"),
    [
        ((True, True, True, True), 4, True),
        ((True, False, True, True), 3, True),  # Budget or Authority
        ((False, True, True, True), 3, True),
        ((False, False, True, True), 2, False),
        ((True, True, False, True), 3, False),  # Need required
        ((True, True, True, None), 3, False),  # Timeline required
        ((None, None, None, None), 0, False),
    ],
)
def test_bant_count_and_sql(values: tuple[Any, ...], count: int, sql: bool) -> None:
    d = dict(zip(("budget", "authority", "need", "timeline"), values, strict=True))
    assert bant_true_count(d) == count
    assert sql_ready(d) is sql
