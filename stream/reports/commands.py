"""`leadstream whatif` and `leadstream review`: read, replay, summarise, write HTML and JSON.

Everything that can be wrong with the command line (a model file, a --fail-if expression, an
objective) is checked before the history is replayed, so a mistake costs a second. So is the
history: a line the replay would refuse stops the report (a `ReportError`, exit 2) naming the
first bad lines, because a report on a history it could not read — "0 events", a gate that
passes on garbage — is worse than none. `skip_bad_lines` (`--skip-bad-lines`) is the explicit
way to report on the rest: the bad lines are left out of every replay, counted in the summary,
and the first ones named in the report.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

from stream.reports.errors import RefusedLines, ReportError
from stream.reports.failif import FailIf
from stream.reports.history import History, read_lines
from stream.reports.pages import review_page, whatif_page
from stream.reports.pool import Replays, Whole
from stream.reports.review import ReviewOptions, review
from stream.reports.runs import Run
from stream.reports.whatif import METRIC_NAMES, compare
from stream.scoring.model import Model, ModelError, load_model
from stream.settings import Settings

T = TypeVar("T")
MAX_NAMED = 5
"""Bad lines named in an error message (all are counted)."""
MAX_KEPT = 20
"""Bad lines named in a summary and its page."""


@dataclass(frozen=True)
class Outcome:
    """What a report command did, for the CLI to print and exit with."""

    summary: dict[str, Any]
    seconds: float
    failed: str | None = None
    """The --fail-if condition, with its values, when it held."""
    skipped: tuple[tuple[str, str], ...] = ()
    """(where, what is wrong) of the bad lines left out (`skip_bad_lines`)."""


def load_history(
    events: Sequence[str], topics: Sequence[str] = (), settings: Settings | None = None
) -> History:
    """Files first (in the order given), then the topics (`--from-topic`), as one history."""
    if not events and not topics:
        raise ReportError(
            "no history given: name EVENTS.jsonl files (or -), or --from-topic channels"
        )
    lines: list[str] = []
    where: list[str] = []
    if events:
        lines, where = read_lines(events)
    if topics:
        import asyncio

        from aiokafka.errors import KafkaError

        from stream.reports.kafka import read_topic_records

        if settings is None:
            settings = Settings.from_env()
        try:
            records = asyncio.run(read_topic_records(settings, topics))
        except (KafkaError, OSError) as exc:
            raise ReportError(
                f"--from-topic: cannot read from {settings.kafka_bootstrap} ({exc}); check "
                "LEADSTREAM_KAFKA_BOOTSTRAP and that the broker is up"
            ) from None
        where.extend(w for w, _ in records)
        lines.extend(line for _, line in records)
    return History.from_lines(lines, where)


def _bad_lines_error(bad: Sequence[tuple[str, str]]) -> ReportError:
    named = "\n".join(f"  {where}: {message}" for where, message in bad[:MAX_NAMED])
    more = f"\n  … and {len(bad) - MAX_NAMED} more" if len(bad) > MAX_NAMED else ""
    return ReportError(
        f"{len(bad)} bad line(s) in the history; fix them, or pass --skip-bad-lines to report "
        f"on the other lines:\n{named}{more}"
    )


def clean(history: History, skip_bad_lines: bool) -> tuple[History, list[tuple[str, str]]]:
    """The history to replay and the bad lines left out; refuses bad lines unless skipping,
    and a history with no line at all."""
    bad = [(history.where[i], message) for i, message in history.bad]
    if bad and not skip_bad_lines:
        raise _bad_lines_error(bad)
    if bad:
        history = history.without(i for i, _ in history.bad)
    if not history.lines:
        raise ReportError("the history has no events: want canonical events as JSON lines")
    return history, bad


def _with_refused_lines_out(
    history: History,
    skipped: list[tuple[str, str]],
    skip_bad_lines: bool,
    make: Callable[[History], T],
) -> tuple[History, T]:
    """`make(history)`, again without the lines the replay itself refused (they passed the
    line checks) when skipping bad lines — so every number comes from the same lines — or
    an error naming them."""
    while True:
        try:
            return history, make(history)
        except RefusedLines as exc:
            refused = [(history.at(number), message) for number, message in exc.errors]
            if not skip_bad_lines:
                raise _bad_lines_error(refused) from None
            skipped.extend(refused)
            history, _ = clean(history.without(n - 1 for n, _ in exc.errors), True)


def _no_events(run: Run, until: str | None) -> None:
    if run.stats.events == 0:
        raise ReportError(
            f"every event of the history is after --until {until}: nothing to report"
            if until
            else "the history has no events: nothing to report"
        )


def _skipped(summary: dict[str, Any], skipped: Sequence[tuple[str, str]]) -> None:
    summary["history"]["bad_lines"] = len(skipped)
    summary["history"]["skipped"] = [
        {"where": where, "error": message} for where, message in skipped[:MAX_KEPT]
    ]


def _model(path: str | None, what: str) -> Model:
    try:
        return load_model(path or None)
    except ModelError as exc:  # names the file and the bad field
        raise ReportError(f"{what} model: {exc}") from None


def _until(text: str) -> None:
    """A bad --until fails before any replay."""
    from stream.scoring.events import EventError, parse_time

    try:
        parse_time(text, "--until")
    except EventError as exc:
        raise ReportError(str(exc)) from None


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
    skip_bad_lines: bool = False,
    jobs: int = 1,
    progress: bool | None = False,
) -> Outcome:
    """Replay the history under both models (in two processes when `jobs` allows), write
    the report, evaluate --fail-if.

    `history` given (tests) replaces `events` and `topics`."""
    gate = FailIf(fail_if, METRIC_NAMES) if fail_if else None
    baseline = _model(baseline_path, "baseline")
    candidate = _model(candidate_path, "candidate")
    if until is not None:
        _until(until)
    started = time.monotonic()
    from stream.reports.shadow import is_shadow_topic, shadow_runs

    shadow = settings is not None and is_shadow_topic(settings, [*events, *topics])
    if shadow:  # the live model against its shadow, on the worker's own transitions
        assert settings is not None
        topics, events = ["channels"], ()
    history = history if history is not None else load_history(events, topics, settings)
    history, skipped = clean(history, skip_bad_lines)

    def both(history: History) -> tuple[Run, Run]:
        runs: dict[str, Run] = {}
        with Replays(history.lines, min(jobs, 2), progress=progress, label="whatif") as pool:
            for name, model in (("baseline", baseline), ("candidate", candidate)):

                def keep(result: Whole, name: str = name) -> None:
                    if name == "baseline" and result.run.errors:
                        raise RefusedLines(result.run.errors)
                    runs[name] = result.run

                pool.whole(model, keep, until=until, states=name == "baseline")
            pool.wait()
        return runs["baseline"], runs["candidate"]

    if shadow:
        assert settings is not None
        base_run, cand_run = shadow_runs(settings, baseline, candidate, history)
    else:
        history, (base_run, cand_run) = _with_refused_lines_out(
            history, skipped, skip_bad_lines, both
        )
    _no_events(base_run, until)
    summary = compare(history, base_run, cand_run)
    _skipped(summary, skipped)
    summary["baseline"]["path"] = baseline_path or "(packaged default)"
    summary["candidate"]["path"] = candidate_path
    _write(out, whatif_page(summary), "report")
    _write(json_out, _json(summary), "JSON summary")
    failed = gate.explain(summary["metrics"]) if gate and gate.holds(summary["metrics"]) else None
    return Outcome(summary, time.monotonic() - started, failed, tuple(skipped))


def run_review(
    model_path: str | None,
    events: Sequence[str],
    out: Path,
    options: ReviewOptions,
    json_out: Path | None = None,
    history: History | None = None,
    topics: Sequence[str] = (),
    settings: Settings | None = None,
    skip_bad_lines: bool = False,
) -> Outcome:
    """Replay the history under the current model and its threshold sweep; write the review.

    `history` given (tests) replaces `events` and `topics`."""
    model = _model(model_path, "current")
    if options.target not in ("accepted", "opportunity"):
        raise ReportError(f"--target {options.target!r}: want accepted or opportunity")
    started = time.monotonic()
    history = history if history is not None else load_history(events, topics, settings)
    history, skipped = clean(history, skip_bad_lines)
    history, summary = _with_refused_lines_out(
        history, skipped, skip_bad_lines, lambda h: review(h, model, options)
    )
    _skipped(summary, skipped)
    _write(out, review_page(summary), "report")
    _write(json_out, _json(summary), "JSON summary")
    return Outcome(summary, time.monotonic() - started, skipped=tuple(skipped))
