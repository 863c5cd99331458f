"""`--from-topic`: history read from the ingest topics instead of a file.

Every partition is read from its beginning to the end offset it had when the read started
(records arriving meanwhile belong to the next report). Partitions are merged by the
collector's acceptance stamp (`accepted_at`, the order the worker applies them in, see
docs/worker.md), else by record timestamp (records written before the stamp existed), while
each partition keeps its own order.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from stream.errors import SettingsError
from stream.reports.errors import ReportError
from stream.settings import Settings
from stream.topics import Topics

CHANNELS = "channels"
"""The `--from-topic` value that means every channel topic (`leads.events.*`, with prefix)."""


def topic_names(settings: Settings, names: Sequence[str]) -> list[str]:
    """Expand `channels` to the channel topics; keep other names as given, once each."""
    out: list[str] = []
    for name in names:
        expanded = Topics.from_settings(settings).channel_topics if name == CHANNELS else [name]
        out.extend(n for n in expanded if n not in out)
    return out


async def _partitions(settings: Settings, topics: Sequence[str]) -> list[TopicPartition]:
    """Every partition of the topics, from the admin client (the consumer's metadata only
    knows topics it was asked about)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        # list first: describing a missing topic lets a broker with auto-creation create it
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            raise SettingsError(
                f"--from-topic: {', '.join(missing)} not on {settings.kafka_bootstrap}; check "
                f"LEADSTREAM_TOPIC_PREFIX={settings.topic_prefix!r} and LEADSTREAM_KAFKA_BOOTSTRAP"
            )
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    count = {d["topic"]: len(d["partitions"]) for d in described}
    return [TopicPartition(t, p) for t in topics for p in range(count.get(t, 1))]


async def read_topics(settings: Settings, names: Sequence[str]) -> list[str]:
    """The canonical-event lines of the topics, merged as described above."""
    return [line for _, line in await read_topic_records(settings, names)]


async def read_topic_records(settings: Settings, names: Sequence[str]) -> list[tuple[str, str]]:
    """(where, line) of every record, merged as described above; `where` is
    `topic[partition]@offset`, so a bad record can be named."""
    parts = await _partitions(settings, topic_names(settings, names))
    # Explicit seeks to the beginning offsets, and "earliest" as the reset policy: with the
    # default ("latest") the reset aiokafka starts on `assign` can land after a
    # `seek_to_beginning` and move the position to the end, and the read finds nothing.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        starts = await consumer.beginning_offsets(parts)
        for tp in parts:
            consumer.seek(tp, starts[tp])
        per_part: dict[TopicPartition, list[tuple[int, int, str, str]]] = {tp: [] for tp in parts}
        pending = {tp for tp in parts if ends[tp] > starts[tp]}
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=1000)
            for tp, records in batch.items():
                for r in records:
                    if r.offset < ends[tp] and r.value is not None:
                        where = f"{tp.topic}[{tp.partition}]@{r.offset}"
                        per_part[tp].append((_stamp(r), r.offset, where, _text(r.value, where)))
                if records and records[-1].offset >= ends[tp] - 1:
                    pending.discard(tp)
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
    finally:
        await consumer.stop()
    merged = heapq.merge(*per_part.values(), key=lambda item: item[0])
    return [(where, line) for _, _, where, line in merged]


def _text(value: bytes, where: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise ReportError(f"{where}: not UTF-8 text; want a canonical event as JSON") from None


def _stamp(record: Any) -> int:
    """Acceptance stamp in microseconds: the `accepted_at` header, else the record time."""
    for name, value in record.headers or ():
        if name == "accepted_at" and value.isdigit():
            return int(value)
    return int(record.timestamp) * 1000
