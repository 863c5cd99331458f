"""Replay: output lines and their schema, bad lines, --until, equality with a manual fold."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import pytest

from stream.pipeline.replay import ReplayError, ReplayStats, replay_lines, run_replay
from stream.scoring import Model, snapshot, tick
from stream.scoring.events import parse_time, us_to_t

from .helpers import at, ev, fold, identify

REPO = Path(__file__).resolve().parents[2]


def lines_of(events: list[Any]) -> list[str]:
    return [orjson.dumps(e.to_dict()).decode() for e in events]


def journey() -> list[Any]:
    when = at(0, 10)
    return [
        identify(at(0, 9), "A", lead="L1"),
        ev("web.page_view", at(0, 9, 30), lead="L2"),
        *[ev("email.click", when, lead="L1", properties={"message_id": f"m{i}"}) for i in range(3)],
        ev("content.ebook_download", when, lead="L1", properties={"asset_id": "a"}),
        ev("trial.signup", when, lead="L1"),  # 9 + 8 + 20 = 37 → MQL
        ev("form.contact_sales", at(1), lead="L2"),  # anonymous hand-raiser
    ]


def test_output_lines_and_schema(model: Model) -> None:
    validator = jsonschema_rs.validator_for(
        json.loads((REPO / "schemas" / "replay-output.schema.json").read_text())
    )
    out = list(replay_lines(lines_of(journey()), model, None))
    for item in out:
        validator.validate(json.loads(json.dumps(item)))
    assert [(o["kind"], o["lead_id"], o.get("to")) for o in out] == [
        ("transition", "L1", "lead"),
        ("transition", "L1", "mql"),
        ("transition", "L2", "sales_ready"),
        ("lead", "L1", None),
        ("lead", "L2", None),
    ]
    mql = out[1]
    assert mql["at"] == "2026-01-05T10:00:00Z" and mql["from"] == "lead"
    assert mql["route"] == "sdr" and mql["threshold"] == 35 and mql["seq"] == 2
    l1 = out[3]
    assert l1["stage"] == "mql" and l1["at"] == at(1)  # evaluated at the last event time
    # 14 h after 10:00: clicks 9·0.5^(Δ/14) + e-book 8·0.5^(Δ/30) + trial 20·0.5^(Δ/30)
    delta = 14 / 24
    expected = 9 * 0.5 ** (delta / 14) + 28 * 0.5 ** (delta / 30)
    assert l1["engagement"] == pytest.approx(expected, abs=1e-9)
    assert out[4]["route"] == "self_serve"  # grade D hand-raiser


def test_bad_lines_are_reported_and_skipped(model: Model) -> None:
    good = lines_of(journey())
    lines = [
        good[0],
        "{not json",
        '{"event_id": "x", "type": "web.page_view"}',
        '{"event_id": "y", "type": "web.page_view", "occurred_at": "2026-01-05T00:00:00Z"}',
        "",
        *good[1:],
    ]
    errors: list[tuple[int, str]] = []
    stats = ReplayStats()
    out = list(
        replay_lines(lines, model, None, on_error=lambda n, m: errors.append((n, m)), stats=stats)
    )
    assert [n for n, _ in errors] == [2, 3, 4]
    assert "not valid JSON" in errors[0][1]
    assert "occurred_at" in errors[1][1]
    assert "no lead_id" in errors[2][1]
    assert stats.bad_lines == 3 and stats.events == len(good)
    assert out == list(replay_lines(good, model, None))


def test_run_replay_writes_json_lines_and_counts_bad_lines(
    model: Model, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "events.jsonl"
    good = lines_of(journey())
    path.write_text("\n".join([*good, "[1, 2]"]) + "\n")
    sink = io.StringIO()
    assert run_replay(path, None, None, sink) == 1
    err = capsys.readouterr().err
    assert "line 9" in err and "1 bad line" in err
    printed = [json.loads(line) for line in sink.getvalue().splitlines()]
    assert printed == json.loads(json.dumps(list(replay_lines(good, model, None))))


def test_until_ignores_later_events_and_fires_ticks_inclusive(model: Model, tmp_path: Path) -> None:
    # L1 MQLs at day 0 10:00 with 37 (9 awareness hl 14, 8 hl 30, 20 hl 30)
    lines = lines_of(journey())
    out = list(replay_lines(lines, model, datetime(2026, 1, 5, 12, tzinfo=UTC)))
    assert [o["lead_id"] for o in out if o["kind"] == "lead"] == ["L1", "L2"]
    assert not any(o.get("to") == "sales_ready" for o in out)  # L2's ask is after --until
    # until far later: hysteresis ticks fire, up to and including until
    until = "2026-02-01T00:00:00Z"
    out = list(replay_lines(lines, model, until))
    decayed = [o for o in out if o.get("reason") == "decayed"]
    assert len(decayed) == 1
    lead = next(o for o in out if o["kind"] == "lead" and o["lead_id"] == "L1")
    assert lead["stage"] == "nurture" and lead["at"] == until
    # the transitions of the end-of-replay ticks come before the lead lines
    assert out.index(decayed[0]) < out.index(lead)


def test_until_as_string_and_bad_until(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(lines_of(journey())))
    assert run_replay(path, None, "2026-01-06T00:00:00Z", io.StringIO()) == 0
    with pytest.raises(ReplayError, match="--until"):
        run_replay(path, None, "tomorrow", io.StringIO())
    with pytest.raises(ReplayError, match="cannot read"):
        run_replay(tmp_path / "missing.jsonl", None, None, io.StringIO())


def test_replay_equals_manual_fold(model: Model) -> None:
    events = journey()
    out = list(replay_lines(lines_of(events), model, None))
    runs = {
        lead: fold(model, [e for e in events if e.lead_id == lead], lead) for lead in ("L1", "L2")
    }
    end = us_to_t(max(parse_time(e.occurred_at) for e in events))
    for run in runs.values():
        run.transitions.extend(tick(run.state, end, model).transitions)
    transitions = [o for o in out if o["kind"] == "transition"]
    manual = sorted(
        (t.to_dict() for r in runs.values() for t in r.transitions), key=lambda d: d["at"]
    )
    assert sorted(transitions, key=lambda d: d["at"]) == manual
    leads = {o["lead_id"]: o for o in out if o["kind"] == "lead"}
    for lead, run in runs.items():
        assert leads[lead] == {"kind": "lead", **snapshot(run.state, model, end)}


def input_validator() -> jsonschema_rs.Validator:
    canonical = json.loads((REPO / "schemas" / "canonical-event.schema.json").read_text())
    replay_input = json.loads((REPO / "schemas" / "replay-input.schema.json").read_text())
    registry = jsonschema_rs.Registry([(canonical["$id"], canonical)])
    return jsonschema_rs.validator_for(replay_input, registry=registry)


def test_input_lines_match_the_input_schema() -> None:
    validator = input_validator()
    for line in lines_of(journey()):
        validator.validate(json.loads(line))
    assert not validator.is_valid({"event_id": "a", "type": "x", "occurred_at": at(0)})  # no key
    assert not validator.is_valid(
        {"event_id": "a", "type": "x", "occurred_at": "2026-01-05", "lead_id": "L"}
    )
