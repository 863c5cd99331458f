"""Fold a JSON-lines file of canonical events through the engine, as the replay command does."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import orjson

from stream.errors import LeadstreamError
from stream.scoring.engine import apply, tick
from stream.scoring.events import EPOCH, Event, EventError, format_us, parse_time, us_to_t
from stream.scoring.explain import Transition, snapshot
from stream.scoring.model import Model, load_model
from stream.scoring.state import LeadState, new_state


class ReplayError(LeadstreamError):
    """The replay input cannot be read at all (missing file, unreadable)."""

    reason = "replay_input"


@dataclass
class ReplayStats:
    """Counts of one replay: applied lines, bad lines, events after --until (ignored)."""

    events: int = 0
    bad_lines: int = 0
    after_until: int = 0


def _to_us(moment: datetime | str) -> int:
    if isinstance(moment, str):
        try:
            return parse_time(moment, "--until")
        except EventError as exc:
            raise ReplayError(str(exc)) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # a naive --until is read as UTC
    return (moment - EPOCH) // (datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - EPOCH)


def _stderr(line: int, message: str) -> None:
    print(f"replay: line {line}: {message}", file=sys.stderr)


def replay_lines(
    lines: Iterable[str],
    model: Model,
    until: datetime | str | None,
    *,
    on_error: Callable[[int, str], None] | None = None,
    stats: ReplayStats | None = None,
    states: dict[str, LeadState] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield the replay output: transition lines in order, then one lead line per lead.

    Events are applied per lead in file order; events after `until` are ignored; at the end
    daily ticks fire up to and including `until` (default: the largest event time in the
    file) and each lead, in first-seen order, is evaluated at that instant. Bad lines go to
    `on_error(line_number, message)` (default: stderr) and the fold goes on. When `states` is
    given it is filled with every lead's final state by lead id (reports read their ledgers).
    """
    report = on_error or _stderr
    stats = stats if stats is not None else ReplayStats()
    until_us = None if until is None else _to_us(until)
    leads: dict[str, LeadState] = states if states is not None else {}
    last_us: int | None = None
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            event = Event.from_dict(orjson.loads(raw))
        except orjson.JSONDecodeError as exc:
            stats.bad_lines += 1
            report(number, f"not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        except EventError as exc:
            stats.bad_lines += 1
            report(number, f"not a valid event: {exc}")
            continue
        key = event.key
        if key is None:
            stats.bad_lines += 1
            report(number, "no lead_id (nor user_id, email, anonymous_id): cannot key the event")
            continue
        if until_us is not None and event.t_us > until_us:
            stats.after_until += 1
            continue
        state = leads.get(key)
        if state is None:
            state = leads[key] = new_state(key)
        outcome = apply(state, event, model)
        stats.events += 1
        last_us = event.t_us if last_us is None else max(last_us, event.t_us)
        for transition in outcome.transitions:
            yield transition.to_dict()
    end_us = until_us if until_us is not None else last_us
    if end_us is None:
        return
    end_t = us_to_t(end_us)
    final: list[tuple[float, int, Transition]] = []
    for index, state in enumerate(leads.values()):
        final.extend((tr.at, index, tr) for tr in tick(state, end_t, model).transitions)
    final.sort(key=lambda item: (item[0], item[1]))
    for _, _, transition in final:
        yield transition.to_dict()
    for state in leads.values():
        yield {"kind": "lead", **snapshot(state, model, end_t)}


def run_replay(
    path: str | Path,
    model_path: str | Path | None,
    until: datetime | str | None,
    out: TextIO,
) -> int:
    """The `leadstream replay` command: write JSON lines to `out`; return the bad-line count.

    `path` "-" reads standard input; `until` is a datetime (naive = UTC) or an RFC 3339
    string. Bad lines are reported on stderr with their number.
    """
    model = load_model(model_path)
    if until is not None:
        _to_us(until)  # a bad --until fails before any output
    stats = ReplayStats()
    try:
        source = sys.stdin if str(path) == "-" else open(path, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise ReplayError(f"{path}: cannot read the events file: {exc.strerror}") from None
    with source:
        for item in replay_lines(source, model, until, stats=stats):
            out.write(orjson.dumps(item).decode())
            out.write("\n")
    if stats.after_until:
        until_text = format_us(_to_us(until)) if until is not None else ""
        print(f"replay: {stats.after_until} event(s) after {until_text} ignored", file=sys.stderr)
    if stats.bad_lines:
        print(f"replay: {stats.bad_lines} bad line(s) reported above", file=sys.stderr)
    return stats.bad_lines
