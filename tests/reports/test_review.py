"""The threshold review on a history where sales accepts exactly the leads above a known score."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from stream.cli import main
from stream.reports.errors import ReportError
from stream.reports.history import History
from stream.reports.review import ReviewOptions, review
from stream.reports.runs import run_model
from stream.reports.sweep import Objective, parse_grid
from stream.scoring.model import default_model

from .histories import outcome_history


@pytest.fixture(scope="module")
def summary() -> dict[str, Any]:
    lines, _ = outcome_history(cut=50)
    return review(History.from_lines(lines), default_model(), ReviewOptions())


def test_the_known_cut_comes_back_within_its_interval(summary: dict[str, Any]) -> None:
    a = summary["suggestions"]["A"]
    assert a["suggested"] == 50
    low, high = a["interval"]
    assert low <= 50 <= high
    assert high - low <= 10  # 41 leads pin it down to a few points
    assert a["precision"] == 1.0 and a["recall"] == 1.0
    assert "B" not in summary["suggestions"]  # no grade B lead: nothing to suggest


@pytest.mark.parametrize("cut", [42, 58])
def test_other_cuts_come_back_too(cut: int) -> None:
    lines, _ = outcome_history(cut=cut)
    result = review(History.from_lines(lines), default_model(), ReviewOptions())
    a = result["suggestions"]["A"]
    assert a["suggested"] == cut
    assert a["interval"][0] <= cut <= a["interval"][1]


def test_acceptance_objective_picks_the_lowest_threshold_meeting_the_rate() -> None:
    lines, _ = outcome_history(cut=50)
    options = ReviewOptions(objective=Objective.parse("acceptance:0.8"))
    result = review(History.from_lines(lines), default_model(), options)
    # MQLs at threshold t: peaks t..70 (71 - t leads), of which 21 accepted (50..70).
    # 21 / (71 - t) >= 0.8  <=>  t >= 44.75: the lowest whole threshold is 45.
    assert result["suggestions"]["A"]["suggested"] == 45
    table = {row["threshold"]: row for row in result["suggestions"]["A"]["table"]}
    assert table[45.0]["precision"] == pytest.approx(21 / 26)
    assert table[44.0]["precision"] == pytest.approx(21 / 27)


def test_funnel_precision_recall_and_sla_match_the_history(summary: dict[str, Any]) -> None:
    # peaks 35..70 reach sales (36 leads); 50..70 accepted with BANT (21), 35..49 rejected (15)
    funnel = summary["funnel"]["counts"]
    assert funnel == {"handed_over": 36, "accepted": 21, "sql": 21, "opportunity": 0, "won": 0}
    q = summary["quality"]["accepted"]["A"]
    assert (q["tp"], q["fp"], q["fn"]) == (21, 15, 0)
    assert q["precision"] == pytest.approx(21 / 36)
    low, high = q["precision_interval"]
    assert low < 21 / 36 < high
    sla = summary["sla"]
    assert (sla["met"], sla["missed"], sla["untouched"]) == (21, 15, 0)
    assert sla["escalations"] == 15  # each rejected lead's 1-day SLA passed unanswered
    assert sum(sum(c.values()) for c in summary["rejections_by_band"].values()) == 15
    assert set(summary["rejections_by_band"]) <= {"30–40", "40–50"}
    assert summary["by_grade"]["A"]["counts"]["handed_over"] == 36
    volume = summary["suggested_volume"]
    assert volume["baseline_mqls"] == 36 and volume["candidate_mqls"] == 21
    assert volume["thresholds"]["A"] == 50


@pytest.mark.parametrize("text", ["f2", "acceptance", "acceptance:2", "recall:x", ""])
def test_bad_objectives_name_the_fix(text: str) -> None:
    with pytest.raises(ReportError, match="want f1, acceptance:RATE or recall:RATE"):
        Objective.parse(text)


def test_objectives_and_grids_parse() -> None:
    assert Objective.parse("acceptance:60%") == Objective("acceptance", 0.6)
    assert Objective.parse("precision:0.7") == Objective("acceptance", 0.7)
    assert Objective.parse("recall:0.9") == Objective("recall", 0.9)
    assert parse_grid("30:60:2") == (30.0, 60.0, 2.0)
    for bad in ("30:60", "60:30:5", "0:100:0.1", "a:b:c"):
        with pytest.raises(ReportError, match="FROM:TO:STEP"):
            parse_grid(bad)


def test_review_command(tmp_path: Path) -> None:
    lines, _ = outcome_history(cut=50)
    events = tmp_path / "events.jsonl"
    events.write_text("".join(line + "\n" for line in lines))
    out, js = tmp_path / "review.html", tmp_path / "review.json"
    result = CliRunner().invoke(
        main, ["review", str(events), "--out", str(out), "--json", str(js), "--grid", "30:70:5"]
    )
    assert result.exit_code == 0, result.output
    assert "A 35 → 50" in result.output
    assert orjson.loads(js.read_bytes())["suggestions"]["A"]["suggested"] == 50
    assert "<svg" in out.read_text()
    bad = CliRunner().invoke(main, ["review", str(events), "--objective", "f2"])
    assert bad.exit_code == 2 and "--objective 'f2'" in bad.output
    bad = CliRunner().invoke(main, ["review", str(events), "--model", str(tmp_path / "x.yaml")])
    assert bad.exit_code == 2 and "cannot read the model file" in bad.output


def test_mql_volume_counts_entries_into_mql_not_sla_escalations(summary: dict[str, Any]) -> None:
    # outcome_history: peaks 35..70 enter mql (36 transitions into mql); the 15 rejected leads'
    # 1-day SLA escalates while they sit in mql (15 more transitions with to == "mql")
    lines, _ = outcome_history(cut=50)
    run = run_model(History.from_lines(lines), default_model())
    into_mql = [tr for tr in run.transitions if tr["to"] == "mql" and tr["from"] != "mql"]
    escalations = [tr for tr in run.transitions if tr["reason"] == "sla_breached"]
    assert len(into_mql) == 36 and len(escalations) == 15
    assert all(tr["to"] == "mql" for tr in escalations)  # they stay in their stage
    table = {row["threshold"]: row for row in summary["suggestions"]["A"]["table"]}
    assert table[35.0]["mql_volume"] == 36
    assert table[50.0]["mql_volume"] == 21
    assert summary["suggested_volume"]["baseline_mqls"] == 36
