"""The history a report replays: canonical-event lines, and an index of what each event was.

The lines go to `replay_lines` unchanged (file order = the order the collector accepted them).
The index keeps, per event id, the few fields a report looks up afterwards — type, time, ids,
and the sales reason — so that a transition's trigger ids and a lead's sales outcomes can be
shown without a second pass over the file. `simulated_history` turns the demo's simulated
journeys into canonical events offline, through the collector's own Segment mapping, so the
reports can be tried on the same history the demo sends.
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
from stream.scoring.events import EventError, parse_time, us_to_t

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

    @property
    def ids(self) -> tuple[str | None, str | None, str | None, str | None]:
        return (self.lead_id, self.user_id, self.email, self.anonymous_id)


@dataclass
class History:
    """Canonical-event lines in accept order, and the index of their events by event id."""

    lines: list[str]
    events: dict[str, HistoryEvent] = field(default_factory=dict)

    @classmethod
    def from_lines(cls, lines: Iterable[str]) -> History:
        """Index every line that parses; lines that do not are left to the replay to report."""
        kept = [line for line in lines if line.strip()]
        history = cls(kept)
        for line in kept:
            event = _index(line)
            if event is not None:
                history.events.setdefault(event.event_id, event)
        return history


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _index(line: str) -> HistoryEvent | None:
    try:
        raw = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(raw, dict):
        return None
    event_id, kind = _str(raw.get("event_id")), _str(raw.get("type"))
    if event_id is None or kind is None:
        return None
    try:
        at = us_to_t(parse_time(raw.get("occurred_at")))
    except EventError:
        return None
    props = raw.get("properties")
    reason = _str(props.get("reason")) if isinstance(props, dict) else None
    return HistoryEvent(
        event_id,
        kind,
        at,
        _str(raw.get("anonymous_id")),
        _str(raw.get("user_id")),
        _str(raw.get("email")),
        _str(raw.get("lead_id")),
        reason,
    )


def read_history(paths: Sequence[str | Path]) -> History:
    """The lines of every file in the order given ("-" is standard input)."""
    if not paths:
        raise ReportError("no history given: name one or more EVENTS.jsonl files (or - for stdin)")
    lines: list[str] = []
    for path in paths:
        if str(path) == "-":
            lines.extend(sys.stdin)
            continue
        try:
            with open(path, encoding="utf-8") as source:
                lines.extend(source)
        except OSError as exc:
            raise ReportError(f"{path}: cannot read the events file: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ReportError(
                f"{path}: not UTF-8 text; want canonical events as JSON lines"
            ) from None
    return History.from_lines(lines)


def simulated_history(leads: int, seed: int, start: datetime = DEMO_START) -> list[str]:
    """The demo's simulated journeys as canonical-event lines, mapped by the collector's code.

    Messages are merged by event time and cut into batches per write key as `send` does, so
    the lines come in the order the collector would have accepted them.
    """
    from stream.collector import segment
    from stream.collector.mapping import load_mapping
    from stream.simulate import build_journeys, ordered_messages
    from stream.simulate.sender import batches

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
    args = parser.parse_args(argv)
    start = datetime.fromisoformat(args.start)
    lines = simulated_history(args.leads, args.seed, start)
    text = "".join(line + "\n" for line in lines)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
