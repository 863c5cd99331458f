"""Kafka and /proc helpers of the benchmark: bulk produce, a committed-offset watcher, CPU, RSS.

Why not `stream.lag.group_lag` in the polling loop: it opens and closes an admin client and a
consumer per call, which costs CPU on a 2-core machine while the process under test runs. The
watcher here keeps one of each open for the whole phase.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from stream.bench.events import Record, topic_of
from stream.errors import LeadstreamError
from stream.topics import partition_for

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(LeadstreamError):
    """A benchmark phase could not measure; the message says which process and log."""

    reason = "bench_failed"


async def produce(
    bootstrap: str, prefix: str, records: Iterable[Record], progress: Any = None
) -> int:
    """Produce records with the batch API (~10× `send()` per record): keyed like aiokafka's
    default partitioner (murmur2, as the Java client and Faust), so every key stays on one
    partition whichever client produced it. Returns the count once every batch is acked."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, max_request_size=4 << 20)
    await producer.start()
    try:
        parts: dict[str, list[int]] = {}
        key_part: dict[tuple[str, bytes], int] = {}
        batches: dict[tuple[str, int], Any] = {}
        pending: list[Any] = []
        count = 0
        for record in records:
            topic = topic_of(prefix, record.channel)
            if topic not in parts:
                parts[topic] = sorted(await producer.partitions_for(topic))
            cached = key_part.get((topic, record.key))
            if cached is None:
                all_parts = parts[topic]
                cached = all_parts[partition_for(record.key, len(all_parts))]
                key_part[(topic, record.key)] = cached
            tp = (topic, cached)
            batch = batches.get(tp) or producer.create_batch()
            if batch.append(key=record.key, value=record.value, timestamp=None) is None:
                pending.append(await producer.send_batch(batch, topic, partition=cached))
                batch = producer.create_batch()
                batch.append(key=record.key, value=record.value, timestamp=None)
            batches[tp] = batch
            count += 1
            if progress is not None and count % 1000 == 0:
                progress.update(1000)
            if len(pending) > 64:  # bound memory: wait for the oldest acks
                for fut in pending[:32]:
                    await fut
                del pending[:32]
        for (topic, partition), batch in batches.items():
            if batch.record_count():
                pending.append(await producer.send_batch(batch, topic, partition=partition))
        for fut in pending:
            await fut
        if progress is not None:
            progress.update(count % 1000)
        return count
    finally:
        await producer.stop()


@dataclass(frozen=True)
class Progress:
    """A consumer group's position on a set of topics at one instant."""

    at: float
    """time.monotonic() of the reading."""
    committed: int
    """Records committed by the group on the counted topics (uncommitted partitions count 0)."""
    lag: int
    """Records not yet committed on all watched topics."""


class OffsetWatcher:
    """Reads a group's committed offsets against the topics' end offsets, clients kept open."""

    def __init__(self, bootstrap: str, group: str, counted: list[str], extra: tuple[str, ...] = ()):
        self.bootstrap = bootstrap
        self.group = group
        self.counted = counted
        self.topics = [*counted, *extra]
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self.partitions: list[TopicPartition] = []

    async def __aenter__(self) -> OffsetWatcher:
        await self.admin.start()
        await self.consumer.start()
        await self.consumer._client.force_metadata_update()
        for topic in self.topics:
            for p in sorted(self.consumer.partitions_for_topic(topic) or ()):
                self.partitions.append(TopicPartition(topic, p))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def read(self) -> Progress:
        try:
            committed = await self.admin.list_consumer_group_offsets(self.group)
        except KafkaError:  # a fresh broker has no coordinator until a group asks: no commits
            committed = {}
        ends = await self.consumer.end_offsets(self.partitions)
        done_counted = lag = 0
        for tp, end in ends.items():
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            lag += max(0, end - done)
            if tp.topic in self.counted:
                done_counted += done
        return Progress(time.monotonic(), done_counted, lag)


class HandoffTail:
    """Reads `leads.handoff` from the start while a phase runs; keeps what latency needs."""

    def __init__(self, bootstrap: str, topic: str):
        self.consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", fetch_max_wait_ms=5
        )
        self.seen: list[tuple[float, float, bytes, float]] = []  # (mono, wall ms, key, recv ms)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> HandoffTail:
        await self.consumer.start()
        self.task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.task is not None:
            self.task.cancel()
        await self.consumer.stop()

    async def _run(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=100)
            mono, wall = time.monotonic(), time.time() * 1000.0
            for records in batches.values():
                for r in records:
                    received = dict(r.headers).get("ce_receivedat", b"").decode()
                    at = datetime.fromisoformat(received).timestamp() * 1000 if received else 0.0
                    self.seen.append((mono, wall, r.key or b"", at))

    async def wait_key(self, key: bytes, timeout: float, alive: Any) -> float:
        """The monotonic instant a handoff with this key was consumed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            alive()
            for mono, _, k, _ in self.seen:
                if k == key:
                    return mono
            await asyncio.sleep(0.05)
        raise BenchError(f"no handoff for {key!r} within {timeout:.0f}s: the worker is not scoring")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat (fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    """Resident set size from /proc/<pid>/status."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0
