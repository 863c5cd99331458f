"""The `pipeline` phase: the pure pipeline in process over the bench's event file, no Kafka.

Why a phase of its own: identity + scoring + outputs is the ceiling of everything else — the
worker, `whatif` and `review` all run it (SPEC, Performance: ≤ 50 µs CPU per event, aim 25).
Measured three ways in one run, each the median of `repeats`:

- floor: `orjson.loads` of every line, what reading the file costs at the least;
- replay: `leadstream replay` over the lines (one partition, states as objects), its output
  serialised as the command writes it;
- worker-style: the worker's pipeline over 4 partitions as the collector keys the events,
  states encoded into byte tables at a landing every `batch` records (5,000: the consume
  loop's checkpoint while it drains, `LEADSTREAM_WORKER_CHECKPOINT_MAX`), every emitted record
  serialised — what the worker's consume loop asks of the pipeline. Keys, topics and
  partitions are worked out before the clock starts: the collector's work, handed to a
  worker with each record.

CPU time (`time.process_time`) per event is the headline: on a shared 2-core machine it moves
less than wall time with what else runs.
"""

from __future__ import annotations

import functools
import gc
import statistics
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from stream.bench import events as ev
from stream.pipeline.core import Pipeline, Tables
from stream.pipeline.processor import Record, channel_source
from stream.pipeline.replay import replay_lines
from stream.pipeline.shadow import shadow_model
from stream.pipeline.ticks import TickScheduler
from stream.scoring import Model, default_model
from stream.scoring.identity import DEV_IDENTITY_SECRET, Identity
from stream.topics import CHANNEL_TOPIC, partition_for

if TYPE_CHECKING:
    from stream.bench.phases import Bench

BY_LEAD = "leads.events.by_lead"


def _cpu(run: Callable[[], None]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one run, after a collection so runs start alike."""
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    run()
    return time.process_time() - cpu, time.perf_counter() - wall


def floor(lines: Sequence[bytes]) -> None:
    loads = orjson.loads
    for line in lines:
        loads(line)


def replay(lines: Sequence[bytes]) -> None:
    dumps = orjson.dumps
    for item in replay_lines((line.decode() for line in lines), default_model(), None):
        dumps(item)


def keyed(lines: Sequence[bytes], partitions: int = 4) -> list[tuple[bytes, str, int, bytes]]:
    """(key, topic, partition, line) of each line as the bench's drains key them: the
    collector's part, done before the clock starts (a worker is handed key and partition)."""
    out = []
    homes: dict[bytes, int] = {}
    for line in lines:
        body = orjson.loads(line)
        key = str(body.get("user_id") or body.get("anonymous_id")).encode()
        topic = f"leads.events.{CHANNEL_TOPIC.get(str(body.get('channel')), 'web')}"
        partition = homes.get(key, -1)
        if partition < 0:
            partition = homes[key] = partition_for(key, partitions)
        out.append((key, topic, partition, line))
    return out


def worker_style(
    records: Sequence[tuple[bytes, str, int, bytes]],
    partitions: int = 4,
    batch: int = 5000,
    shadow: Model | None = None,
) -> None:
    """`keyed` records through the worker's pipeline; by-lead records hop at once. `shadow`:
    a shadow model scored beside the live one (`--shadow-model`)."""
    tables: list[tuple[dict[str, str], dict[bytes, bytes], dict[str, str]]] = [
        ({}, {}, {}) for _ in range(partitions)
    ]
    pipeline = Pipeline(
        Tables(lambda p: tables[p][0], lambda p: tables[p][1], lambda p: tables[p][2]),
        default_model(),
        Identity(partitions, DEV_IDENTITY_SECRET, partition_for),
        TickScheduler({}),
        BY_LEAD,
        shadow_model=shadow,
    )
    offsets: dict[tuple[str, int], int] = {}
    dumps = orjson.dumps
    pending = 0
    for key, topic, partition, line in records:
        offset = offsets.get((topic, partition), 0)
        offsets[(topic, partition)] = offset + 1
        queue = [Record(topic, partition, offset, key, line, [], channel_source(topic, partition))]
        while queue:
            emit = pipeline.process(queue.pop())
            for hop_key, hop, headers, home in emit.by_lead:
                queue.append(Record(BY_LEAD, home, -1, hop_key, dumps(hop), headers))
        pending += 1
        if pending >= batch:
            pipeline.write_landing(pipeline.take_landing())
            pending = 0
    pipeline.write_landing(pipeline.take_landing())


def measure(
    lines: Sequence[bytes], repeats: int = 3, shadow: Model | None = None
) -> dict[str, Any]:
    """Median CPU µs per event of each way, events/s by CPU and by wall time."""
    out: dict[str, Any] = {"events": len(lines), "repeats": repeats}
    ways: tuple[tuple[str, Callable[[Sequence[bytes]], None]], ...] = (
        ("floor", floor),
        ("replay", replay),
    )
    runs = [(name, functools.partial(way, lines)) for name, way in ways]
    runs.append(("worker_style", functools.partial(worker_style, keyed(lines), shadow=shadow)))
    for name, run in runs:
        cpu, wall = zip(*(_cpu(run) for _ in range(repeats)), strict=True)
        per_event = statistics.median(cpu) / len(lines) * 1e6
        out[name] = {
            "cpu_us_per_event": per_event,
            "events_per_cpu_s": 1e6 / per_event,
            "events_per_s": len(lines) / statistics.median(wall),
            "cpu_us_runs": [c / len(lines) * 1e6 for c in cpu],
        }
    out["cpu_us_per_event"] = out["replay"]["cpu_us_per_event"]
    return out


async def pipeline_phase(bench: Bench) -> None:
    """The bench file's events (generated as the drains generate them), measured in process."""
    plan = bench.plan
    if bench.file.exists():
        lines = bench.file.read_bytes().splitlines()
    else:
        lines = [r.value for r in ev.generate(plan.events, plan.file_leads, plan.seed)]
    bench.results["pipeline"] = measure(lines, shadow=shadow_model(plan.settings))
