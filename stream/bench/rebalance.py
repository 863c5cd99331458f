"""The bench's rebalance phase: how long scoring stops when workers join, leave, die or restart.

Workers of one group on 12 partitions take a steady paced load while an operator's actions
happen one after another. The measure is the output itself: every scored event writes a ledger
entry naming its event id, stamped when the worker produced it; mapped back to the input
partition the event was sent to, a partition's longest gap between ledger entries after an
action is how long that partition stopped; the report gives the longest and the median over
the partitions. The phase runs twice, with dynamic membership and with static membership
(`LEADSTREAM_WORKER_INSTANCE_ID`), which changes what a leave and a restart cost.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stream.bench import events as ev
from stream.bench.kafkaio import BenchError, HandoffTail
from stream.demo import Processes
from stream.dev.process import free_port
from stream.settings import Settings
from stream.topics import Topics, ensure_topics, partition_for

if TYPE_CHECKING:
    from stream.bench.phases import Bench

PARTITIONS = 12
RATE = 300.0  # events/s: well under two workers' drain, so a gap is a pause, not a backlog
PAUSED_S = 1.0  # a partition counts as paused by an action when its gap exceeds this


class Group:
    """Worker processes of one consumer group, each with its own state dir and web port."""

    def __init__(self, bench: Bench, settings: Settings, static: bool):
        self.bench = bench
        self.settings = settings
        self.static = static
        self.procs = Processes(settings, bench.plan.work / "logs" / settings.topic_prefix)

    def start(self, name: str) -> None:
        own = self.settings.replace(
            data_dir=str(self.bench.plan.work / self.settings.topic_prefix / name),
            worker_port=free_port(),
            worker_instance_id=f"{self.settings.topic_prefix}{name}" if self.static else "",
            log_level="info",  # each rebalance's steps and what was kept (--keep-work)
        )
        self.procs.start(name, command="worker", settings=own)

    def kill(self, name: str) -> None:
        proc = self.procs.children.pop(name)
        proc.kill()
        proc.wait()

    async def stop(self, name: str) -> None:
        proc = self.procs.children.pop(name)
        proc.terminate()
        await asyncio.to_thread(proc.wait, 60)


def actions(group: Group) -> list[tuple[str, Callable[[], Any]]]:
    """What an operator does, in order, on a group that starts as w1 and w2."""

    async def restart() -> None:
        await group.stop("w1")
        group.start("w1")

    return [
        ("join (a third worker starts)", lambda: group.start("w3")),
        ("leave (SIGTERM)", lambda: group.stop("w3")),
        ("crash (SIGKILL)", lambda: group.kill("w2")),
        ("rejoin after the crash", lambda: group.start("w2")),
        ("restart (SIGTERM, start again)", restart),
    ]


async def rebalance_phase(bench: Bench) -> None:
    settle = 6.0 if bench.plan.latency_seconds < 20 else 12.0
    result: dict[str, Any] = {"partitions": PARTITIONS, "rate_per_s": RATE, "settle_s": settle}
    for static in (False, True):
        name = "static" if static else "dynamic"
        result[name] = await _run(bench, f"rebalance-{name}", static, settle)
    bench.results["rebalance"] = result


async def _run(bench: Bench, phase: str, static: bool, settle: float) -> dict[str, Any]:
    settings = bench.phase_settings(phase).replace(partitions=PARTITIONS)
    await ensure_topics(settings)
    topics = Topics.from_settings(settings)
    group = Group(bench, settings, static)
    marks: list[tuple[str, float]] = []
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks=1)
    load: asyncio.Task[None] | None = None
    try:
        group.start("w1")
        group.start("w2")
        async with HandoffTail(settings.kafka_bootstrap, topics.handoff) as tail:
            await bench._ready(settings, group.procs, tail)
        await producer.start()
        sent_to: dict[str, int] = {}  # event id -> input partition
        load = asyncio.create_task(_steady(producer, settings, bench.plan.file_leads, sent_to))
        await _wait(settle, group.procs, load)  # the second worker joins meanwhile
        began = time.time()
        for label, act in actions(group):
            await _wait(settle, group.procs, load)
            marks.append((label, time.time()))
            done = act()
            if asyncio.iscoroutine(done):
                await done
        await _wait(settle + 6.0, group.procs, load)  # a crash pauses for the session timeout
        ended = time.time()
    finally:
        if load is not None:
            load.cancel()
        await producer.stop()
        group.procs.stop()
    gaps = await _gaps(settings.kafka_bootstrap, topics.ledger, began - 1.0, ended, sent_to)
    cases = []
    bounds = [*(t for _l, t in marks), ended]
    for (label, at), until in zip(marks, bounds[1:], strict=True):
        longest = {p: _longest(stamps, at, until) for p, stamps in gaps.items()}
        cases.append(
            {
                "case": label,
                "longest_pause_s": max(longest.values(), default=0.0),
                # Half the partitions stopped at most this long: what the partitions that
                # did not move paid, where more than half stay put.
                "median_pause_s": statistics.median(longest.values()) if longest else 0.0,
                "partitions_paused": sum(1 for g in longest.values() if g > PAUSED_S),
            }
        )
    quiet = {p: _longest(stamps, began, marks[0][1]) for p, stamps in gaps.items()}
    return {"steady_longest_gap_s": max(quiet.values(), default=0.0), "cases": cases}


async def _steady(
    producer: AIOKafkaProducer, settings: Settings, leads: int, sent_to: dict[str, int]
) -> None:
    live = ev.LiveEvents(leads, seed=4242)
    sent, start = 0, time.monotonic()
    while True:
        while sent < RATE * (time.monotonic() - start):
            r = live.next()
            sent_to[orjson.loads(r.value)["event_id"]] = partition_for(r.key, PARTITIONS)
            await producer.send(ev.topic_of(settings.topic_prefix, r.channel), r.value, key=r.key)
            sent += 1
        await asyncio.sleep(0.01)


async def _wait(seconds: float, procs: Processes, load: asyncio.Task[None]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        procs.check_alive()
        if load.done():
            raise BenchError(f"the paced load stopped: {load.exception()}")
        await asyncio.sleep(0.2)


async def _gaps(
    bootstrap: str, topic: str, since: float, until: float, sent_to: dict[str, int]
) -> dict[int, list[float]]:
    """Each input partition's ledger entry times (s) in [since, until]."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    stamps: dict[int, list[float]] = {p: [] for p in range(PARTITIONS)}
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.offsets_for_times({tp: int(since * 1000) for tp in tps})
        pending = set()
        for tp in tps:
            found = starts.get(tp)
            if found is not None:
                consumer.seek(tp, found.offset)
                pending.add(tp)
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=1000)
            for tp, records in batches.items():
                for r in records:
                    at = r.timestamp / 1000.0
                    source = sent_to.get(orjson.loads(r.value or b"{}").get("event_id", ""))
                    if source is not None and at <= until:
                        stamps[source].append(at)
                if records and records[-1].offset + 1 >= ends[tp]:
                    pending.discard(tp)
        return stamps
    finally:
        await consumer.stop()


def _longest(stamps: list[float], since: float, until: float) -> float:
    """The longest stretch within [since, until] without a record (both ends included)."""
    inside = sorted(t for t in stamps if since <= t <= until)
    points = [since, *inside, until]
    return max(b - a for a, b in itertools.pairwise(points))
