"""`leadstream whatif` and `leadstream review`: read, replay, summarise, write HTML and JSON.

Everything that can be wrong with the command line (a model file, a --fail-if expression, an
objective) is checked before the history is replayed, so a mistake costs a second.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from stream.reports.errors import ReportError
from stream.reports.failif import FailIf
from stream.reports.history import History, read_history
from stream.reports.pages import review_page, whatif_page
from stream.reports.review import ReviewOptions, review
from stream.reports.runs import run_model
from stream.reports.whatif import METRIC_NAMES, compare
from stream.scoring.model import Model, ModelError, load_model
from stream.settings import Settings


@dataclass(frozen=True)
class Outcome:
    """What a report command did, for the CLI to print and exit with."""

    summary: dict[str, Any]
    seconds: float
    failed: str | None = None
    """The --fail-if condition, with its values, when it held."""


def load_history(
    events: Sequence[str], topics: Sequence[str] = (), settings: Settings | None = None
) -> History:
    """Files first (in the order given), then the topics (`--from-topic`), as one history."""
    if not events and not topics:
        raise ReportError(
            "no history given: name EVENTS.jsonl files (or -), or --from-topic channels"
        )
    lines: list[str] = read_history(events).lines if events else []
    if topics:
        import asyncio

        from stream.reports.kafka import read_topics

        if settings is None:
            settings = Settings.from_env()
        lines.extend(asyncio.run(read_topics(settings, topics)))
    return History.from_lines(lines)


def _model(path: str | None, what: str) -> Model:
    try:
        return load_model(path or None)
    except ModelError as exc:  # names the file and the bad field
        raise ReportError(f"{what} model: {exc}") from None


def _write(path: Path | None, text: str | bytes, what: str) -> None:
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"{path}: cannot write the {what}: {exc.strerror}") from None


def _json(summary: dict[str, Any]) -> bytes:
    return orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)


def run_whatif(
    baseline_path: str | None,
    candidate_path: str,
    events: Sequence[str],
    out: Path,
    json_out: Path | None = None,
    fail_if: str | None = None,
    until: str | None = None,
    history: History | None = None,
    topics: Sequence[str] = (),
    settings: Settings | None = None,
) -> Outcome:
    """Replay the history under both models, write the report, evaluate --fail-if.

    `history` given (tests) replaces `events` and `topics`."""
    gate = FailIf(fail_if, METRIC_NAMES) if fail_if else None
    baseline = _model(baseline_path, "baseline")
    candidate = _model(candidate_path, "candidate")
    started = time.monotonic()
    history = history if history is not None else load_history(events, topics, settings)
    summary = compare(
        history, run_model(history, baseline, until), run_model(history, candidate, until)
    )
    summary["baseline"]["path"] = baseline_path or "(packaged default)"
    summary["candidate"]["path"] = candidate_path
    _write(out, whatif_page(summary), "report")
    _write(json_out, _json(summary), "JSON summary")
    failed = gate.explain(summary["metrics"]) if gate and gate.holds(summary["metrics"]) else None
    return Outcome(summary, time.monotonic() - started, failed)


def run_review(
    model_path: str | None,
    events: Sequence[str],
    out: Path,
    options: ReviewOptions,
    json_out: Path | None = None,
    history: History | None = None,
    topics: Sequence[str] = (),
    settings: Settings | None = None,
) -> Outcome:
    """Replay the history under the current model and its threshold sweep; write the review.

    `history` given (tests) replaces `events` and `topics`."""
    model = _model(model_path, "current")
    if options.target not in ("accepted", "opportunity"):
        raise ReportError(f"--target {options.target!r}: want accepted or opportunity")
    started = time.monotonic()
    history = history if history is not None else load_history(events, topics, settings)
    summary = review(history, model, options)
    _write(out, review_page(summary), "report")
    _write(json_out, _json(summary), "JSON summary")
    return Outcome(summary, time.monotonic() - started)
