"""The golden corpus: inputs whose pipeline outputs were recorded before the pipeline was made
fast (issue 25), so that every later change can be checked to change no output at all.

Four replay inputs (the bench's event file, the demo history, a 3,000-lead history, and the
demo history made hostile: late events, repeats, bad lines, a long `--until`) and the worker's
pipeline over four partitions on the demo history, keyed both through the collector's
directory and by each event's own ids (so forwards, pulls and cross-partition merges happen).

What is compared: replay's JSON lines byte for byte; of the worker run, every record it would
produce (handoffs with their headers, ledger entries, by-lead records, contact updates, dead
letters), the order records finish in, and each lead's final state. Lead states are compared
by content, not bytes: the state codec may change (a new version must read the old one).

`python -m tests.golden.corpus record` writes `digests.json` (and the small outputs, gzipped,
to read a difference); the test (`test_golden.py`) recomputes and compares.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import io
import random
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from stream.bench import events as bench_events
from stream.collector.directory import plan_keys
from stream.pipeline.core import Pipeline, Tables
from stream.pipeline.processor import Emit, Record, channel_source
from stream.pipeline.replay import replay_lines
from stream.pipeline.ticks import TickScheduler
from stream.reports.history import simulated_history
from stream.scoring import LeadState, Model, default_model
from stream.scoring.events import format_us, parse_time
from stream.scoring.identity import Identity
from stream.topics import CHANNEL_TOPIC, partition_for

HERE = Path(__file__).resolve().parent
DIGESTS = HERE / "digests.json"
SECRET = "golden-identity-secret"
BY_LEAD = "leads.events.by_lead"


def bench_lines(events: int = 200_000) -> list[str]:
    """The bench's drained file (`leadstream bench`: 200,000 events over 66,666 leads)."""
    leads = max(1000, events // 3)
    return [r.value.decode() for r in bench_events.generate(events, leads, 42)]


def demo_lines() -> list[str]:
    """`python -m stream.reports.history` with its defaults (200 leads, seed 7)."""
    return simulated_history(200, 7)


def history_lines() -> list[str]:
    """`python -m stream.reports.history --leads 3000 --seed 1234` (the review's history)."""
    return simulated_history(3000, 1234)


def hostile_lines() -> tuple[list[str], str]:
    """The demo history with late events (lines moved later), repeated lines (same event id),
    repeated ids with other content, bad lines, and an `--until` 45 days after the end."""
    rng = random.Random(2025)
    lines = demo_lines()
    out: list[str] = []
    moved: list[tuple[int, str]] = []
    last_us = 0
    for i, line in enumerate(lines):
        last_us = max(last_us, parse_time(orjson.loads(line)["occurred_at"]))
        roll = rng.random()
        if roll < 0.04:
            moved.append((i + rng.randrange(5, 400), line))  # arrives late
            continue
        out.append(line)
        if roll < 0.07:
            out.append(line)  # a retry: same event id
        elif roll < 0.08:
            body = orjson.loads(line)
            body["type"] = "web.pricing_view"
            out.append(orjson.dumps(body).decode())  # same id, other content: still a repeat
        elif roll < 0.085:
            out.append(rng.choice(['{"not": "an event"}', "not json", "[]", '{"event_id": 1}']))
        while moved and moved[0][0] <= i:
            out.append(moved.pop(0)[1])
        moved.sort()
    out.extend(line for _, line in moved)
    until = format_us(last_us + 45 * 86_400_000_000)
    return out, until


def replay_output(lines: Iterable[str], until: str | None = None) -> bytes:
    """`leadstream replay` output (JSON lines) and the bad-line messages, as one byte string."""
    buffer = io.BytesIO()
    errors: list[tuple[int, str]] = []
    for item in replay_lines(
        lines, default_model(), until, on_error=lambda n, m: errors.append((n, m))
    ):
        buffer.write(orjson.dumps(item))
        buffer.write(b"\n")
    for number, message in errors:
        buffer.write(orjson.dumps({"bad_line": number, "message": message}))
        buffer.write(b"\n")
    return buffer.getvalue()


def state_content(state: LeadState) -> dict[str, Any]:
    """A lead state by content: what every codec version must keep (dict orders aside)."""
    fields = dataclasses.asdict(state)
    for kept in ("seen_floor", "seen_runs", "company"):  # not stored: what a state keeps in memory
        fields.pop(kept, None)
    fields["seen"] = sorted(fields["seen"].items())
    fields["keys"] = {k: sorted(v) for k, v in sorted(fields["keys"].items())}
    fields["watermarks"] = sorted(fields["watermarks"].items())
    return fields


class WorkerRun:
    """The worker's pipeline over `partitions` in-memory partitions, as the collector keys
    events through its directory, or by their own ids with the cookie first (as a collector
    without Redis would: many records then land away from their lead and are forwarded), by-lead
    records delivered in the order they are produced, landing after every record."""

    def __init__(self, partitions: int, model: Model, *, directory: bool):
        self.partitions = partitions
        self.directory = directory
        self.aliases: dict[int, dict[str, str]] = {p: {} for p in range(partitions)}
        self.states: dict[int, dict[bytes, bytes]] = {p: {} for p in range(partitions)}
        self.merges: dict[int, dict[str, str]] = {p: {} for p in range(partitions)}
        self.pipeline = Pipeline(
            Tables(lambda p: self.aliases[p], lambda p: self.states[p], lambda p: self.merges[p]),
            model,
            Identity(partitions, SECRET, partition_for),
            TickScheduler({}),
            BY_LEAD,
            merge_timeout=30.0,
            clock=lambda: 0.0,
        )
        self.claims: dict[str, str] = {}
        self.offsets: dict[tuple[str, int], int] = {}
        self.out: list[Any] = []

    def _record(self, topic: str, partition: int, key: bytes, value: bytes) -> Record:
        offset = self.offsets.get((topic, partition), 0)
        self.offsets[(topic, partition)] = offset + 1
        source = None if topic == BY_LEAD else channel_source(topic, partition)
        return Record(topic, partition, offset, key, value, [], source)

    def send(self, line: str) -> None:
        try:
            body = orjson.loads(line)
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            key, channel = "garbage", "web"
        elif self.directory:
            keys, claims = plan_keys([body], self.claims, SECRET)
            self.claims.update(claims)
            key, channel = keys[0], body.get("channel")
        else:
            ids = (body.get("anonymous_id"), body.get("user_id"), body.get("email"))
            key = next((str(i).lower() for i in ids if i), "garbage")
            channel = body.get("channel")
        topic = f"leads.events.{CHANNEL_TOPIC.get(str(channel), 'web')}"
        partition = partition_for(key.encode(), self.partitions)
        queue = [self._record(topic, partition, key.encode(), line.encode())]
        while queue:
            emit = self.pipeline.process(queue.pop(0))
            self.pipeline.write_landing(self.pipeline.take_landing())
            queue.extend(self._collect(emit))

    def _collect(self, emit: Emit) -> Iterator[Record]:
        for key, value, headers in emit.handoffs:
            self.out.append(["handoff", key, value, headers])
        for key, value in emit.ledger:
            self.out.append(["ledger", key, value])
        for key, value in emit.accounts:
            self.out.append(["contact", key, value])
        for key, value, headers in emit.deadletters:
            self.out.append(["dead", key, value, [h for h in headers if h[0] != "error"]])
        for done in emit.done:
            self.out.append(["done", done.topic, done.partition, done.offset])
        for key, body, headers, home in emit.by_lead:
            shown = dict(body)
            if shown.get("state"):
                state = LeadState.decode(base64.b64decode(shown["state"]))
                shown["state"] = state_content(state)
            self.out.append(["by_lead", key, shown, headers, home])
            record = self._record(BY_LEAD, home, key, orjson.dumps(body))
            record.headers = headers
            yield record

    def finish(self) -> bytes:
        for p in range(self.partitions):
            for _ in self._collect(self.pipeline.expire(p)):
                pass
        leads = sorted(
            (key.decode(), state_content(LeadState.decode(value)))
            for table in self.states.values()
            for key, value in table.items()
        )
        parts = [_dumps(item) for item in self.out]
        parts += [_dumps(lead) for lead in leads]
        parts += [orjson.dumps(sorted(a.items())) for a in self.aliases.values()]
        return b"\n".join(parts) + b"\n"


def _bytes(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    raise TypeError(type(value).__name__)


def _dumps(item: Any) -> bytes:
    return orjson.dumps(item, default=_bytes, option=orjson.OPT_NON_STR_KEYS)


def worker_output(lines: Iterable[str], *, directory: bool) -> bytes:
    run = WorkerRun(4, default_model(), directory=directory)
    for line in lines:
        run.send(line)
    return run.finish()


def cases() -> dict[str, Callable[[], bytes]]:
    """Name → how to compute its output. Small ones are also kept whole (gzipped)."""
    return {
        "replay-bench": lambda: replay_output(bench_lines()),
        "replay-demo": lambda: replay_output(demo_lines()),
        "replay-history-3000": lambda: replay_output(history_lines()),
        "replay-hostile": lambda: replay_output(*hostile_lines()),
        "worker-demo-directory": lambda: worker_output(demo_lines(), directory=True),
        "worker-demo-own-keys": lambda: worker_output(demo_lines(), directory=False),
        "worker-hostile-own-keys": lambda: worker_output(hostile_lines()[0], directory=False),
    }


KEPT_WHOLE = ("replay-demo", "replay-hostile")


def digest(data: bytes) -> dict[str, Any]:
    return {"sha256": hashlib.sha256(data).hexdigest(), "lines": data.count(b"\n")}


def record(names: Iterable[str] | None = None) -> None:
    table = orjson.loads(DIGESTS.read_bytes()) if DIGESTS.exists() else {}
    for name, compute in cases().items():
        if names and name not in names:
            continue
        data = compute()
        table[name] = digest(data)
        if name in KEPT_WHOLE:
            (HERE / f"{name}.jsonl.gz").write_bytes(gzip.compress(data, mtime=0))
        print(name, table[name], file=sys.stderr)
    DIGESTS.write_bytes(orjson.dumps(table, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


if __name__ == "__main__":
    if sys.argv[1:2] != ["record"]:
        sys.exit("usage: python -m tests.golden.corpus record [NAME ...]")
    record(sys.argv[2:] or None)
