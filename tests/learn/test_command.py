"""`learn` on a history with a planted truth: it finds it, and beats the default model on the
newer 30 % it never saw; and it refuses what it cannot learn from, saying why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner

from stream.cli import main
from stream.learn.command import MIN_EACH
from stream.learn.planted import NOT_PREDICTIVE, PREDICTIVE
from stream.reports.history import simulated_history
from stream.scoring.model import load_model
from tests.learn.conftest import path_of


def _type(summary: dict[str, Any], name: str) -> dict[str, Any]:
    row: dict[str, Any] = next(r for r in summary["weights"]["types"] if r["name"] == name)
    return row


def test_the_predictive_type_gains_points_and_the_other_loses_them(learned: dict[str, Any]) -> None:
    s = learned["summary"]
    signal, noise = _type(s, PREDICTIVE), _type(s, NOT_PREDICTIVE)
    assert signal["after"] > signal["before"]
    assert signal["interval"][0] > signal["before"]  # the whole interval is above today's
    assert noise["after"] < noise["before"]
    assert noise["interval"][1] < noise["before"]
    candidate = load_model(path_of(learned, "candidate.yaml"))
    assert candidate.types[PREDICTIVE].points == signal["after"]
    assert candidate.types[NOT_PREDICTIVE].points == noise["after"]


def test_the_learned_model_ranks_the_held_out_leads_better(learned: dict[str, Any]) -> None:
    ev = learned["summary"]["evaluation"]
    by = {m["role"]: m for m in ev["models"]}
    assert ev["train"] + ev["test"] == learned["summary"]["sample"]["judged"]
    assert by["candidate"]["auc"] > by["current"]["auc"]
    assert by["regression"]["auc"] > by["current"]["auc"]
    # the same volume for both: the candidate's top k hold more accepted leads
    k = by["current"]["at_volume"]["k"]
    assert k == by["candidate"]["at_volume"]["k"] > 0
    assert by["candidate"]["at_volume"]["hits"] > by["current"]["at_volume"]["hits"]


def test_the_candidate_is_a_model_file_of_today_with_a_new_version_and_its_story(
    learned: dict[str, Any],
) -> None:
    text = path_of(learned, "candidate.yaml").read_text()
    model = load_model(path_of(learned, "candidate.yaml"))
    assert (model.id, model.version) == ("default-b2b", "1.1.0")
    head = [line for line in text.splitlines() if line.startswith("#")]
    assert any("leadstream learn --outcome accepted" in line for line in head)
    assert any("held-out AUC" in line for line in head)
    # only points moved: thresholds, groups and half-lives are as today
    default = load_model(None)
    assert model.rules.mql_thresholds == default.rules.mql_thresholds
    assert model.groups == default.groups
    assert all(model.types[t].half_life == r.half_life for t, r in default.types.items())
    assert all(float(r.points).is_integer() for r in model.types.values())


def test_the_report_and_the_whatif_are_written(learned: dict[str, Any]) -> None:
    summary = orjson.loads(path_of(learned, "learn.json").read_bytes())
    assert summary["candidate"]["model"] == "default-b2b@1.1.0"
    assert summary["whatif"]["baseline_mqls"] > 0
    page = path_of(learned, "learn.html").read_text()
    assert "<svg" in page and PREDICTIVE in page and "Calibration" in page
    assert "<script" not in page
    assert path_of(learned, "whatif.html").read_text().startswith("<!DOCTYPE html>")


def test_too_few_outcomes_exit_2_with_the_numbers(tmp_path: Path) -> None:
    events = tmp_path / "small.jsonl"
    events.write_text("".join(line + "\n" for line in simulated_history(80, 1, planted_truth=True)))
    result = CliRunner().invoke(
        main,
        ["learn", str(events), "--outcome", "accepted", "--candidate", str(tmp_path / "c.yaml"),
         "--out", str(tmp_path / "l.html"), "--whatif-out", str(tmp_path / "w.html")],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "too few outcomes" in result.output
    assert f"need at least {MIN_EACH} of each" in result.output
    assert "80 leads judged" in result.output
    assert not (tmp_path / "c.yaml").exists()


def test_a_bad_history_exits_2_naming_the_line(tmp_path: Path, planted_lines: list[str]) -> None:
    events = tmp_path / "bad.jsonl"
    lines = planted_lines[:5]
    lines[3] = '{"type": "web.page_view", "channel": "web"'
    events.write_text("".join(line + "\n" for line in lines))
    result = CliRunner().invoke(
        main,
        ["learn", str(events), "--outcome", "sql", "--candidate", str(tmp_path / "c.yaml"),
         "--out", str(tmp_path / "l.html")],
    )  # fmt: skip
    assert result.exit_code == 2
    assert f"{events}:4: not valid JSON" in result.output
    assert not (tmp_path / "c.yaml").exists()


def test_an_unknown_outcome_is_refused() -> None:
    result = CliRunner().invoke(main, ["learn", "x.jsonl", "--outcome", "revenue"])
    assert result.exit_code == 2
    assert "accepted" in result.output
