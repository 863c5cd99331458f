"""Reading history, and the demo's simulated journeys as canonical events."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from stream.reports.errors import ReportError
from stream.reports.history import History, read_history, simulated_history
from stream.reports.runs import attribute, run_model
from stream.scoring.model import default_model


def test_simulated_history_is_reproducible_and_replays_cleanly() -> None:
    lines = simulated_history(30, 7)
    assert lines == simulated_history(30, 7)
    kinds = {orjson.loads(line)["type"] for line in lines}
    assert {"identify", "web.page_view", "sales.accepted"} <= kinds
    history = History.from_lines(lines)
    run = run_model(history, default_model())
    assert run.errors == [] and run.stats.events == len(lines)
    placed = attribute(run, history)
    assert len(placed) == len(lines)  # every event found its lead
    sales = [e for e in history.events.values() if e.type.startswith("sales.")]
    assert sales and all(placed[e.event_id] == e.user_id for e in sales)


def test_read_history_joins_files_in_order_and_says_what_is_wrong(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text('{"event_id": "1"}\n\n')
    b.write_text('{"event_id": "2"}\n')
    assert read_history([a, b]).lines == ['{"event_id": "1"}\n', '{"event_id": "2"}\n']
    with pytest.raises(ReportError, match="cannot read the events file"):
        read_history([tmp_path / "missing.jsonl"])
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\xff\xfe\n")
    with pytest.raises(ReportError, match="not UTF-8"):
        read_history([bad])
    with pytest.raises(ReportError, match="no history given"):
        read_history([])


def test_bad_lines_are_counted_not_fatal() -> None:
    good = simulated_history(3, 1)
    history = History.from_lines(["not json", *good, '{"type": "x"}'])
    run = run_model(history, default_model())
    assert run.stats.bad_lines == 2 and [n for n, _ in run.errors] == [1, len(good) + 2]
    # the history saw them first, with the replay's own words
    assert [(i + 1, message) for i, message in history.bad] == run.errors
    assert history.without(i for i, _ in history.bad).lines == good


def test_lines_are_named_by_file_and_line_blank_lines_counted(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    good = simulated_history(2, 1)
    a.write_text(good[0] + "\n\nnot json\n")
    b.write_text("\n".join(good[1:4]) + "\n[]\n")
    history = read_history([a, b])
    assert history.where[:2] == [f"{a}:1", f"{a}:3"]
    assert [(history.where[i], m.split(" (")[0]) for i, m in history.bad] == [
        (f"{a}:3", "not valid JSON"),
        (f"{b}:4", "not a valid event: event: want a JSON object, got list"),
    ]
