"""The what-if on a history with known answers, and the command around it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from stream.cli import main
from stream.reports.history import History
from stream.reports.runs import run_model, with_thresholds
from stream.reports.whatif import METRIC_NAMES, compare
from stream.scoring.model import MODELS_DIR, Model, default_model

from .histories import threshold_history


@pytest.fixture(scope="module")
def history() -> tuple[History, dict[str, tuple[str, int]]]:
    lines, known = threshold_history()
    return History.from_lines(lines), known


def _a45(model: Model) -> Model:
    return with_thresholds(model, {"A": 45, "B": 45}, "a45")


@pytest.fixture(scope="module")
def summary(history: tuple[History, dict[str, tuple[str, int]]]) -> dict[str, Any]:
    hist, _ = history
    model = default_model()
    return compare(hist, run_model(hist, model), run_model(hist, _a45(model)))


def _mql_leads(transitions: list[dict[str, Any]]) -> set[str]:
    return {tr["lead_id"] for tr in transitions if tr["to"] == "mql"}


def test_raising_a_from_35_to_45_removes_exactly_the_mqls_in_between(
    history: tuple[History, dict[str, tuple[str, int]]], summary: dict[str, Any]
) -> None:
    hist, known = history
    model = default_model()
    base = _mql_leads(run_model(hist, model).transitions)
    cand = _mql_leads(run_model(hist, _a45(model)).transitions)
    between = {lead for lead, (grade, peak) in known.items() if grade == "A" and 35 <= peak < 45}
    assert len(between) == 10
    for lead, (grade, peak) in known.items():  # lead by lead, against the designed peaks
        assert (lead in base) == (peak >= (35 if grade == "A" else 45)), lead
        assert (lead in cand) == (peak >= 45), lead
    assert base - cand == between
    assert cand <= base
    assert {item["lead_id"] for item in summary["changed"]} == between
    m = summary["metrics"]
    assert m["mql_change"] == -10
    assert m["baseline_mqls"] == 42 and m["candidate_mqls"] == 32  # A 35..60 + B 45..60: 26 + 16
    assert m["mql_change_pct"] == pytest.approx(-23.81)
    assert m["leads_changed"] == 10
    assert set(m) == set(METRIC_NAMES)


def test_each_changed_lead_carries_the_evidence_of_both_models(summary: dict[str, Any]) -> None:
    for item in summary["changed"]:
        assert item["baseline_path"] == ["lead", "mql"]
        assert item["candidate_path"] == ["lead"]
        mql = next(step for step in item["baseline"] if step["to"] == "mql")
        assert mql["threshold"] == 35 and 35 <= mql["engagement"] < 45
        assert mql["grade"] == "A"
        assert mql["triggers"] and mql["triggers"][0]["type"]  # the event that tipped it
        assert mql["top_contributors"]
        assert "≥ 35" in item["why"] and "threshold 45" in item["why"]
        assert not any(step["to"] == "mql" for step in item["candidate"])


def test_weekly_and_daily_series_add_up(summary: dict[str, Any]) -> None:
    for side in ("baseline", "candidate"):
        assert sum(summary["weekly"][side]["mql"]) == summary[side]["mqls"]
        per_day = summary["daily_handoffs"][side]
        assert sum(sum(v) for v in per_day.values()) == summary[side]["handoffs"]
        assert summary[side]["handoffs_by_route"] == {"sdr/P2": summary[side]["mqls"]}
    assert len(summary["weekly"]["weeks"]) == 3
    assert summary["baseline"]["grade_mix_handed_over"] == {"A": 26, "B": 16}
    # every MQL here happens one minute after the lead's first touch
    assert set(summary["baseline"]["days_to_mql"]) == {round(1 / 1440, 4)}


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _candidate(tmp_path: Path) -> Path:
    text = (MODELS_DIR / "default-b2b.yaml").read_text()
    edited = text.replace("thresholds: {A: 35, B: 45}", "thresholds: {A: 45, B: 45}")
    assert edited != text
    path = tmp_path / "candidate.yaml"
    path.write_text(edited.replace("version: 1.0.0", "version: 1.1.0"))
    return path


def test_command_writes_both_outputs_and_fail_if_gates(tmp_path: Path) -> None:
    lines, _ = threshold_history()
    events, candidate = _write(tmp_path, lines), _candidate(tmp_path)
    out, summary = tmp_path / "r.html", tmp_path / "r.json"
    args = ["whatif", "--candidate", str(candidate), str(events), "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--json", str(summary)])
    assert result.exit_code == 0, result.output
    data = orjson.loads(summary.read_bytes())
    assert data["candidate"]["model"] == "default-b2b@1.1.0"
    assert data["metrics"]["mql_change_pct"] == pytest.approx(-23.81)
    assert out.read_text().startswith("<!DOCTYPE html>")
    failed = CliRunner().invoke(main, [*args, "--fail-if", "mql_change_pct < -20"])
    assert failed.exit_code == 1
    assert "mql_change_pct = -23.81" in failed.output
    passed = CliRunner().invoke(main, [*args, "--fail-if", "abs(mql_change_pct) > 40"])
    assert passed.exit_code == 0, passed.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--fail-if", "mql_changes > 20"], "unknown metric 'mql_changes'"),
        (["--fail-if", "mql_change_pct >"], "not an expression"),
        (["--fail-if", "__import__('os')"], "only abs(x) may be called"),
        (["--fail-if", "mql_change_pct"], "want a condition"),
    ],
)
def test_bad_fail_if_is_a_clear_error_before_any_replay(
    tmp_path: Path, extra: list[str], message: str
) -> None:
    missing = tmp_path / "not-there.jsonl"  # never read: the expression fails first
    cand = _candidate(tmp_path)
    result = CliRunner().invoke(main, ["whatif", "--candidate", str(cand), str(missing), *extra])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_bad_model_path_and_bad_model_are_clear_errors(tmp_path: Path) -> None:
    events = _write(tmp_path, threshold_history()[0])
    result = CliRunner().invoke(
        main, ["whatif", "--candidate", str(tmp_path / "nope.yaml"), str(events)]
    )
    assert result.exit_code == 2
    assert "candidate model" in result.output and "cannot read the model file" in result.output
    broken = tmp_path / "broken.yaml"
    broken.write_text(_candidate(tmp_path).read_text().replace("{A: 45, B: 45}", "{A: lots}"))
    result = CliRunner().invoke(main, ["whatif", "--candidate", str(broken), str(events)])
    assert result.exit_code == 2 and "candidate model" in result.output
    result = CliRunner().invoke(
        main, ["whatif", "--candidate", str(_candidate(tmp_path)), str(tmp_path / "no.jsonl")]
    )
    assert result.exit_code == 2 and "cannot read the events file" in result.output


def test_a_lead_that_only_gets_there_later_is_listed_as_retimed() -> None:
    from .histories import GRADE_A, HOUR_US, by_time, event, lead_events, spread

    start = spread(0)
    events = lead_events("u-slow", 35, start, GRADE_A)  # 35 at once: MQL under A 35 only
    later = start + 48 * HOUR_US
    for n in range(2):  # two days later +16 (and a little decay): above 45 as well
        events.append(
            event("content.case_study_download", later, "u-slow", properties={"asset_id": f"c{n}"})
        )
    hist = History.from_lines(by_time(events))
    model = default_model()
    summary = compare(hist, run_model(hist, model), run_model(hist, _a45(model)))
    assert summary["changed"] == []
    (moved,) = summary["retimed"]
    assert moved["lead_id"] == "u-slow" and moved["step"] == "lead → mql"
    assert moved["shift_days"] == pytest.approx(2 - 1 / 1440, abs=1e-3)  # burst was +1 min
    assert summary["metrics"]["leads_retimed"] == 1
    assert summary["metrics"]["median_retime_days"] == moved["shift_days"]


def test_time_to_mql_curves_compare_leads_not_each_sides_own_share(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stricter candidate drops the slow MQLs: normalised to its own count its curve rose
    faster than the baseline's. Both curves must count the same thing (leads), so the
    candidate's can never lie above the baseline's when it hands over a subset, later or not
    at all."""
    from matplotlib.axes import Axes

    from stream.reports.pages import whatif_page

    from .histories import pace_history

    lines, _ = pace_history()
    hist = History.from_lines(lines)
    model = default_model()
    summary = compare(hist, run_model(hist, model), run_model(hist, _a45(model)))
    assert (summary["baseline"]["mql_leads"], summary["candidate"]["mql_leads"]) == (20, 10)
    drawn: dict[str, tuple[list[float], list[float]]] = {}
    step = Axes.step

    def record(self: Axes, x: Any, y: Any, *args: Any, **kwargs: Any) -> Any:
        drawn[str(kwargs.get("label", "")).split(" ")[0]] = (list(x), list(y))
        return step(self, x, y, *args, **kwargs)

    monkeypatch.setattr(Axes, "step", record)
    whatif_page(summary)
    (bx, by), (cx, cy) = drawn["baseline"], drawn["candidate"]

    def height(xs: list[float], ys: list[float], at: float) -> float:
        return max((y for x, y in zip(xs, ys, strict=True) if x <= at), default=0.0)

    for at in sorted({*bx, *cx}):
        assert height(cx, cy, at) <= height(bx, by, at), at
    assert by[-1] == 20 and cy[-1] == 10  # the curves end at each side's MQL leads
