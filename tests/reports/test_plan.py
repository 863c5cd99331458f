"""The shared sweep against brute force: every value's replay, lead by lead, and the review.

The shortcut (`stream.reports.plan`: chains of partial replays over identity components) must
give exactly what replaying the whole history under each threshold gives — every transition
and lead line, thresholds and model versions included — and so exactly the same report.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from stream.reports.components import Layout
from stream.reports.history import History, simulated_history
from stream.reports.parts import split
from stream.reports.plan import Sweep
from stream.reports.pool import Replays
from stream.reports.review import ReviewOptions, review
from stream.reports.runs import run_lines
from stream.reports.sweep import parse_grid, volume
from stream.scoring.model import default_model

from .histories import outcome_history

GRID = parse_grid("20:60:5")


def _late(lines: list[str]) -> list[str]:
    """Some records delayed past later ones, as a batched upload would deliver them."""
    out = list(lines)
    for i in range(30, len(out) - 30, 83):
        out.insert(i + 20, out.pop(i))
    return out


@pytest.fixture(scope="module", params=["in order", "with late records"])
def journeys(request: pytest.FixtureRequest) -> History:
    """The demo's journeys: visitors merged at identify, fast lane, MQLs of grades A and B,
    SLA escalations, sales answers; at the low values, MQL exits by daily ticks too."""
    lines = simulated_history(45, 2)
    return History.from_lines(lines if request.param == "in order" else _late(lines))


def test_every_value_replayed_in_parts_equals_its_whole_replay(journeys: History) -> None:
    model = default_model()
    best = {"A": 35.0, "B": None}  # A's refinements: 31..34 from the low chain, 36..39 from base
    with Replays(journeys.lines, 2) as replays:
        plan = Sweep(journeys, model, GRID, replays, lambda grade, runs: best[grade])
        plan.start(lambda run: {"A": ([], frozenset()), "B": ([], frozenset())})
        layout = Layout.of(journeys)
        plan.use(layout)
        replays.wait()
        assert plan.strategy == "components"
        plan.suggest({"A": 45.0, "B": 40.0})
        replays.wait()
    cost = plan.cost()
    assert cost["whole_replays"] == 3  # the base and each grade's lowest value
    tried = {grade: plan.runs_of(grade) for grade in ("A", "B")}
    assert set(tried["A"]) == {20.0, 25.0, 30.0, *range(31, 40), 40.0, 45.0, 50.0, 55.0, 60.0}
    assert set(tried["B"]) == {20.0, 25.0, 30.0, 35.0, 40.0, 45.0, 50.0, 55.0, 60.0}
    assert cost["lines_replayed"] < len(journeys.lines) * (len(tried["A"]) + len(tried["B"]))
    checks = [
        (plan.model_for({grade: value}), run)
        for grade, runs in tried.items()
        for value, run in runs.items()
        if value != plan.current[grade]
    ]
    for grade, runs in tried.items():  # what the sweep reads, without assembling Runs
        assert plan.volumes(grade) == {
            value: volume(run.transitions) for value, run in runs.items()
        }
    assert plan.suggested is not None
    checks.append((plan.model_for({"A": 45.0, "B": 40.0}), plan.suggested))
    for model_at, run in checks:
        whole = run_lines(journeys.lines, model_at, keep_states=False)
        expected = split(whole.transitions, whole.leads.values(), layout)
        got = split(run.transitions, run.leads.values(), layout)
        assert got == expected, model_at.ref


def _same(a: dict[str, Any], b: dict[str, Any]) -> None:
    a, b = dict(a), dict(b)
    for volatile in ("generated_at", "replays"):
        a.pop(volatile), b.pop(volatile)
    assert orjson.loads(orjson.dumps(a)) == orjson.loads(orjson.dumps(b))


def test_the_review_is_the_same_with_or_without_the_shortcut() -> None:
    journeys = History.from_lines(_late(simulated_history(45, 2)))
    model = default_model()
    shortcut = review(journeys, model, ReviewOptions(jobs=2))
    whole = review(journeys, model, ReviewOptions(jobs=2, shortcut=False))
    assert shortcut["replays"]["strategy"] == "components"
    assert whole["replays"]["strategy"] == "whole replays (asked for)"
    assert shortcut["replays"]["lines_replayed"] < whole["replays"]["lines_replayed"]
    _same(shortcut, whole)


def test_the_known_cut_review_is_the_same_both_ways_in_one_process() -> None:
    lines, _ = outcome_history(cut=50)
    history = History.from_lines(lines)
    one = review(history, default_model(), ReviewOptions(jobs=1))
    _same(one, review(history, default_model(), ReviewOptions(jobs=1, shortcut=False)))
    assert one["suggestions"]["A"]["suggested"] == 50


def test_a_progress_bar_counts_the_replays_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    lines, _ = outcome_history(cut=50)
    review(History.from_lines(lines), default_model(), ReviewOptions(progress=True))
    err = capsys.readouterr().err
    assert "review:" in err and "replay" in err


def test_a_history_the_layout_cannot_serve_is_replayed_whole() -> None:
    lines, _ = outcome_history(cut=50)
    odd = orjson.loads(lines[0])
    odd.update(event_id="odd-1", user_id=None, lead_id="~reports-clock~7")
    history = History.from_lines([*lines, orjson.dumps(odd).decode()])
    summary = review(history, default_model(), ReviewOptions())
    assert summary["replays"]["strategy"].startswith("whole replays (a lead id starts with")
    assert summary["replays"]["partial_replays"] == 0
    assert summary["suggestions"]["A"]["suggested"] == 50
