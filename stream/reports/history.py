"""The history a report replays: canonical-event lines, and an index of what each event was.

The lines go to `replay_lines` unchanged (file order = the order the collector accepted them).
The index keeps, per event id, the few fields a report looks up afterwards — type, time, ids,
and the sales reason — so that a transition's trigger ids and a lead's sales outcomes can be
shown without a second pass over the file. The same pass checks every line as the replay
will (JSON, a valid canonical event, an id to key it by) and keeps where each line came from
(`file:line`), so a report can refuse bad input naming the lines before it replays anything.
`simulated_history` turns the demo's simulated journeys into canonical events offline, through
the collector's own Segment mapping, so the reports can be tried on the history the demo sends.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from stream.reports.errors import ReportError
from stream.scoring.events import Event, EventError, us_to_t

DEMO_START = datetime(2026, 1, 5, tzinfo=UTC)
"""Where `simulated_history` starts by default: a fixed instant, so numbers are reproducible
(the live demo starts 40 days before now; the journeys are the same relative to their start)."""


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """What a report needs to know about one input event after the replay."""

    event_id: str
    type: str
    at: float
    """Event time in model time (days since the epoch)."""
    anonymous_id: str | None
    user_id: str | None
    email: str | None
    lead_id: str | None
    reason: str | None
    """`properties.reason` of sales outcomes (rejections, lost opportunities)."""
    t_us: int = 0
    """Event time in integer microseconds, as the engine reads it."""

    @property
    def ids(self) -> tuple[str | None, str | None, str | None, str | None]:
        return (self.lead_id, self.user_id, self.email, self.anonymous_id)


@dataclass
class History:
    """Canonical-event lines in accept order, where each came from, the index of their events
    by event id, and the lines the replay would refuse."""

    lines: list[str]
    events: dict[str, HistoryEvent] = field(default_factory=dict)
    where: list[str] = field(default_factory=list)
    """Where each line came from (`history.jsonl:12`), parallel to `lines`."""
    bad: list[tuple[int, str]] = field(default_factory=list)
    """(index into `lines`, what is wrong) for each line the replay would refuse."""
    per_line: list[HistoryEvent | None] = field(default_factory=list)
    """Each line's event (None for a bad line), parallel to `lines`: what the reports'
    layout of the history (`stream.reports.components`) reads instead of parsing again."""

    @classmethod
    def from_lines(cls, lines: Iterable[str], where: Sequence[str] | None = None) -> History:
        """Index every good line and note the bad ones; blank lines are dropped (their
        neighbours keep their own line numbers). `where` names each input line (default
        `line N`)."""
        kept: list[str] = []
        labels: list[str] = []
        for number, line in enumerate(lines, 1):
            if line.strip():
                kept.append(line)
                labels.append(where[number - 1] if where is not None else f"line {number}")
        history = cls(kept, where=labels)
        for index, line in enumerate(kept):
            event, error = _index(line)
            history.per_line.append(event)
            if event is not None:
                history.events.setdefault(event.event_id, event)
            elif error is not None:
                history.bad.append((index, error))
        return history

    def at(self, number: int) -> str:
        """Where the replay's line `number` (1-based, as `on_error` numbers them) came from."""
        return self.where[number - 1] if 0 < number <= len(self.where) else f"line {number}"

    def without(self, indices: Iterable[int]) -> History:
        """The same history without the lines at these indices (bad lines, left out)."""
        drop = set(indices)
        keep = [i for i in range(len(self.lines)) if i not in drop]
        out = History([self.lines[i] for i in keep], where=[self.where[i] for i in keep])
        for old in keep:
            event = self.per_line[old]
            out.per_line.append(event)
            if event is not None:
                out.events.setdefault(event.event_id, event)
        moved = {old: new for new, old in enumerate(keep)}
        out.bad = [(moved[i], message) for i, message in self.bad if i in moved]
        return out


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _index(line: str) -> tuple[HistoryEvent | None, str | None]:
    """The line's event, or what the replay would say is wrong with it (same checks, same
    words as `stream.pipeline.replay`)."""
    try:
        raw = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg} at column {exc.colno})"
    try:
        event = Event.from_dict(raw)
    except EventError as exc:
        return None, f"not a valid event: {exc}"
    if event.key is None:
        return None, "no lead_id (nor user_id, email, anonymous_id): cannot key the event"
    props = raw.get("properties")
    reason = _str(props.get("reason")) if isinstance(props, dict) else None
    return HistoryEvent(
        event.event_id,
        event.type,
        us_to_t(event.t_us),
        _str(raw.get("anonymous_id")),
        _str(raw.get("user_id")),
        _str(raw.get("email")),
        _str(raw.get("lead_id")),
        reason,
        event.t_us,
    ), None


def read_history(paths: Sequence[str | Path]) -> History:
    """The lines of every file in the order given ("-" is standard input)."""
    return History.from_lines(*read_lines(paths))


def read_lines(paths: Sequence[str | Path]) -> tuple[list[str], list[str]]:
    """The lines of every file in the order given, and where each came from (`file:line`)."""
    if not paths:
        raise ReportError("no history given: name one or more EVENTS.jsonl files (or - for stdin)")
    lines: list[str] = []
    where: list[str] = []
    for path in paths:
        if str(path) == "-":
            before = len(lines)
            lines.extend(sys.stdin)
            where.extend(f"<stdin>:{n}" for n in range(1, len(lines) - before + 1))
            continue
        try:
            with open(path, encoding="utf-8") as source:
                before = len(lines)
                lines.extend(source)
                where.extend(f"{path}:{n}" for n in range(1, len(lines) - before + 1))
        except OSError as exc:
            raise ReportError(f"{path}: cannot read the events file: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ReportError(
                f"{path}: not UTF-8 text; want canonical events as JSON lines"
            ) from None
    return lines, where


def simulated_history(
    leads: int, seed: int, start: datetime = DEMO_START, *, planted_truth: bool = False
) -> list[str]:
    """The demo's simulated journeys as canonical-event lines, mapped by the collector's code.

    Messages are merged by event time and cut into batches per write key as `send` does, so
    the lines come in the order the collector would have accepted them. `planted_truth`:
    journeys whose sales answers follow a known rule instead (`stream.learn.planted`), to
    test `leadstream learn` on a history with a known answer.
    """
    from stream.collector import segment
    from stream.collector.mapping import load_mapping
    from stream.simulate import build_journeys, ordered_messages
    from stream.simulate.sender import batches

    if planted_truth:
        from stream.learn.planted import build_planted

        journeys = build_planted(leads, seed, start)
    else:
        journeys = build_journeys(leads, seed, start)
    messages = ordered_messages(journeys)
    if not messages:
        return []
    received = max(m.at for m in messages) + timedelta(minutes=5)
    mapping = load_mapping()
    sources = {
        "browser": segment.Source("website", "browser", "website"),
        "server": segment.Source("crm", "server", "crm"),
    }
    lines: list[str] = []
    for batch in batches(messages, 100):
        body = segment.Batch([m.body for m in batch])
        for outcome in segment.process(
            body, "batch", sources[batch[0].source], mapping, received, 32 * 1024
        ):
            if isinstance(outcome, segment.Accepted):
                lines.append(orjson.dumps(outcome.event).decode())
            elif isinstance(outcome, segment.Rejected):
                raise ReportError(f"simulated message refused by the collector: {outcome.error}")
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m stream.reports.history`: write the demo's history as canonical events."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--leads", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--start", default=DEMO_START.isoformat(), help="RFC 3339 start time")
    parser.add_argument("--out", default="-", help="output file (default stdout)")
    parser.add_argument(
        "--planted-truth",
        action="store_true",
        help="journeys where sales accepts webinar attendees (70 %%) far more than others "
        "(12 %%), whatever their e-book downloads: a known answer for `leadstream learn`",
    )
    args = parser.parse_args(argv)
    start = datetime.fromisoformat(args.start)
    lines = simulated_history(args.leads, args.seed, start, planted_truth=args.planted_truth)
    text = "".join(line + "\n" for line in lines)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
