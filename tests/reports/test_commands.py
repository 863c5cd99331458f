"""Exit codes of `whatif` and `review`: 0 report written, 1 --fail-if holds, 2 no report (bad
history, model or option, with the reason and the bad lines named)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from stream.cli import main
from stream.reports.commands import run_whatif
from stream.reports.history import History
from stream.scoring.model import MODELS_DIR

from .histories import threshold_history

NOT_JSON = "not json"
NO_IDS = orjson.dumps(
    {"event_id": "x-1", "type": "identify", "channel": "crm", "occurred_at": "2026-01-05T09:00:00Z"}
).decode()


def _candidate(tmp_path: Path) -> Path:
    text = (MODELS_DIR / "default-b2b.yaml").read_text()
    path = tmp_path / "candidate.yaml"
    path.write_text(text.replace("thresholds: {A: 35, B: 45}", "thresholds: {A: 45, B: 45}"))
    return path


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _whatif(tmp_path: Path, events: Path, *extra: str) -> tuple[int, str]:
    args = ["whatif", "--candidate", str(_candidate(tmp_path)), str(events)]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "w.html"), *extra])
    return result.exit_code, result.output


def test_an_unreadable_history_exits_2_naming_the_lines_even_with_a_gate(tmp_path: Path) -> None:
    events = _write(tmp_path / "bad.jsonl", [NOT_JSON, "", NO_IDS])
    code, output = _whatif(tmp_path, events, "--fail-if", "mql_change_pct > 20")
    assert code == 2, output
    assert f"{events}:1: not valid JSON" in output
    assert f"{events}:3: no lead_id (nor user_id, email, anonymous_id)" in output  # blank is 2
    assert "--skip-bad-lines" in output
    assert not (tmp_path / "w.html").exists()
    result = CliRunner().invoke(main, ["review", str(events), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 2
    assert f"{events}:1: not valid JSON" in result.output


def test_a_few_bad_lines_among_good_ones_are_refused_unless_skipped(tmp_path: Path) -> None:
    good, _ = threshold_history()
    lines = [*good[:10], *[NOT_JSON] * 7, *good[10:], NO_IDS]
    events = _write(tmp_path / "mixed.jsonl", lines)
    code, output = _whatif(tmp_path, events)
    assert code == 2
    assert "8 bad line(s)" in output and f"{events}:11: not valid JSON" in output
    assert "… and 3 more" in output  # the first five are named
    summary = tmp_path / "w.json"
    code, output = _whatif(tmp_path, events, "--skip-bad-lines", "--json", str(summary))
    assert code == 0, output
    assert "left out 8 bad line(s)" in output
    data = orjson.loads(summary.read_bytes())
    assert data["history"]["bad_lines"] == 8
    assert data["history"]["skipped"][0]["where"] == f"{events}:11"
    clean = run_whatif(
        None, str(_candidate(tmp_path)), [], tmp_path / "c.html", history=History.from_lines(good)
    )
    assert data["metrics"] == clean.summary["metrics"]  # the other lines, as if alone
    assert "bad line(s) of the history were left out" in (tmp_path / "w.html").read_text()


def test_the_gate_exits_1_and_only_the_gate(tmp_path: Path) -> None:
    events = _write(tmp_path / "events.jsonl", threshold_history()[0])
    assert _whatif(tmp_path, events, "--fail-if", "mql_change_pct < -20")[0] == 1
    assert _whatif(tmp_path, events, "--fail-if", "mql_change_pct < -30")[0] == 0
    assert _whatif(tmp_path, events, "--fail-if", "mql_chnage < -20")[0] == 2
    assert _whatif(tmp_path, events, "--until", "yesterday")[0] == 2
    code, output = _whatif(tmp_path, events, "--until", "2020-01-01T00:00:00Z")
    assert code == 2 and "every event of the history is after --until" in output
    broken = tmp_path / "broken.yaml"
    broken.write_text(_candidate(tmp_path).read_text().replace("{A: 45, B: 45}", "{A: lots}"))
    args = ["whatif", "--candidate", str(broken), str(events), "--fail-if", "leads > 0"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "candidate model" in result.output
    result = CliRunner().invoke(main, args[:4], env={"LEADSTREAM_PARTITIONS": "many"})
    assert result.exit_code == 2 and "LEADSTREAM_PARTITIONS" in result.output


@pytest.mark.parametrize("command", ["whatif", "review"])
def test_help_states_the_exit_codes_and_the_bad_line_policy(command: str) -> None:
    text = " ".join(CliRunner().invoke(main, [command, "--help"]).output.split())
    assert "--skip-bad-lines Report on the lines that can be read, leaving out bad ones" in text
    assert "Exit codes: 0 the report is written" in text
    assert "2 no report: a bad history (its bad lines named)" in text
    assert ("1 --fail-if holds" in text) == (command == "whatif")
