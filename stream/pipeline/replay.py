"""`leadstream replay`: the worker's own pipeline over in-memory tables, fed a file of events.

Each line is a canonical event as the collector wrote it to a channel topic; file order is the
order the collector accepted them. The lines go through `stream.pipeline.core.Pipeline` —
the same identity step (visitors, identifies, merges, conflicts) and scoring step as the live
worker — with one partition, so every lead is at home and no record needs to travel. Replay
of the channel topics therefore equals the live worker by construction; the worker's
co-partition merge and merge protocol are what make it equal with more partitions.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import orjson

from stream.errors import LeadstreamError
from stream.gcpolicy import quiet_collector, settle
from stream.pipeline.core import Pipeline, Tables
from stream.pipeline.processor import Record, channel_source
from stream.pipeline.ticks import TickScheduler
from stream.scoring.engine import tick
from stream.scoring.events import EPOCH, Event, EventError, format_us, parse_time, us_to_t
from stream.scoring.explain import Transition, snapshot
from stream.scoring.identity import DEV_IDENTITY_SECRET, Identity
from stream.scoring.model import Model, load_model
from stream.scoring.state import LeadState
from stream.topics import CHANNEL_TOPIC, partition_for

LAND_EVERY = 2000  # lines between landings of staged writes (reads see them either way)
BY_LEAD = "leads.events.by_lead"


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
    secret: str = "",
) -> Iterator[dict[str, Any]]:
    """Yield the replay output: transition lines in order, then one lead line per lead.

    Events are applied in file order through the worker's pipeline; events after `until` are
    ignored; at the end timers fire up to and including `until` (default: the largest event
    time in the file) and each lead, in first-seen order, is evaluated at that instant. A
    line with a `lead_id` belongs to that lead as it is (hand-written histories, the by-lead
    topic); the others are resolved as the worker resolves them.
    Bad lines go to `on_error(line_number, message)` (default: stderr) and the fold goes on.
    When `states` is given it is filled with every lead's final state by lead id (reports
    read their ledgers). `secret` is the identity secret, for email visitors' lead ids to
    equal the worker's. The collector is quieted for the run (`stream.gcpolicy`).
    """
    with quiet_collector():
        yield from _replay(lines, model, until, on_error, stats, states, secret)


def _replay(
    lines: Iterable[str],
    model: Model,
    until: datetime | str | None,
    on_error: Callable[[int, str], None] | None,
    stats: ReplayStats | None,
    states: dict[str, LeadState] | None,
    secret: str,
) -> Iterator[dict[str, Any]]:
    report = on_error or _stderr
    stats = stats if stats is not None else ReplayStats()
    until_us = None if until is None else _to_us(until)
    leads: dict[str, LeadState] = {}
    pipeline = replay_pipeline(model, leads, secret=secret)
    inputs = ReplayInputs()
    last_us: int | None = None
    for number, raw in enumerate(lines, 1):
        if not raw or raw.isspace():
            continue
        try:
            body = orjson.loads(raw)
            event = Event.from_dict(body)
        except orjson.JSONDecodeError as exc:
            stats.bad_lines += 1
            report(number, f"not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        except EventError as exc:
            stats.bad_lines += 1
            report(number, f"not a valid event: {exc}")
            continue
        if event.key is None:
            stats.bad_lines += 1
            report(number, "no lead_id (nor user_id, email, anonymous_id): cannot key the event")
            continue
        if until_us is not None and event.t_us > until_us:
            stats.after_until += 1
            continue
        queue = [inputs.record(number, body, event)]
        while queue:
            emit = pipeline.process(queue.pop(0))
            for key, hop, headers, _home in emit.by_lead:  # none with one partition
                queue.append(Record(BY_LEAD, 0, -1, key, b"", headers, None, hop))
            for _key, _value, dl_headers in emit.deadletters:
                error = dict(dl_headers).get("error", b"").decode()
                stats.bad_lines += 1
                report(number, f"not a valid event: {error}")
            for transition in emit.transitions:
                yield transition.to_dict()
        stats.events += 1
        last_us = event.t_us if last_us is None else max(last_us, event.t_us)
        if number % LAND_EVERY == 0:
            pipeline.write_landing(pipeline.take_landing())
            settle()
    pipeline.write_landing(pipeline.take_landing())
    end_us = until_us if until_us is not None else last_us
    if states is not None:
        states.update(leads)
    if end_us is None:
        return
    end_t = us_to_t(end_us)
    final: list[tuple[float, int, Transition]] = []
    for index, state in enumerate(leads.values()):
        if state.next_tick is not None or state.sla_due is not None:  # else no timer to fire
            final.extend((tr.at, index, tr) for tr in tick(state, end_t, model).transitions)
    final.sort(key=lambda item: (item[0], item[1]))
    for _, _, transition in final:
        yield transition.to_dict()
    for state in leads.values():
        yield {"kind": "lead", **snapshot(state, model, end_t)}


def replay_pipeline(
    model: Model,
    leads: dict[str, LeadState],
    *,
    secret: str = "",
    on_state: Callable[[str, LeadState], None] | None = None,
) -> Pipeline:
    """The worker's pipeline as replay runs it: one partition (every lead at home), tables in
    memory (`leads` fills with the states), merges that never time out, lead ids on lines
    trusted, no per-record metrics or output records. `on_state` sees each state kept."""
    aliases: dict[str, str] = {}
    merges: dict[str, str] = {}
    return Pipeline(
        Tables(lambda _p: aliases, lambda _p: {}, lambda _p: merges, memory=leads),
        model,
        Identity(1, secret or DEV_IDENTITY_SECRET, partition_for),
        TickScheduler({}),
        BY_LEAD,
        merge_timeout=float("inf"),
        on_state=on_state,
        trust_lead_ids=True,
        records=False,
    )


class ReplayInputs:
    """Replay lines as the records of their channel topic's partition 0, numbered by line."""

    def __init__(self) -> None:
        self.inputs: dict[str | None, tuple[str, int]] = {}  # channel -> topic, watermark id

    def record(self, number: int, body: dict[str, Any], event: Event) -> Record:
        where = self.inputs.get(event.channel)
        if where is None:
            topic = f"leads.events.{CHANNEL_TOPIC.get(str(event.channel), 'web')}"
            where = self.inputs[event.channel] = (topic, channel_source(topic, 0))
        return Record(where[0], 0, number, None, b"", [], where[1], body, event=event)


def run_replay(
    path: str | Path,
    model_path: str | Path | None,
    until: datetime | str | None,
    out: TextIO,
    *,
    secret: str = "",
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
        for item in replay_lines(source, model, until, stats=stats, secret=secret):
            out.write(orjson.dumps(item).decode())
            out.write("\n")
    if stats.after_until:
        until_text = format_us(_to_us(until)) if until is not None else ""
        print(f"replay: {stats.after_until} event(s) after {until_text} ignored", file=sys.stderr)
    if stats.bad_lines:
        print(f"replay: {stats.bad_lines} bad line(s) reported above", file=sys.stderr)
    return stats.bad_lines
