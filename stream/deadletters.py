"""`leadstream deadletters list | redrive`: look at what was refused, send it back after a fix.

A re-drive sends the original bytes unchanged, with the original key, to the topic they came
from (the `original_topic` header). Dead letters refused by the collector itself have no topic
to go back to: they are listed, and re-driven by posting them again once the client is fixed.
The re-drive remembers how far it got through the consumer group `leadstream-redrive`, so
each dead letter is re-driven once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from stream.deadletter import header_value
from stream.settings import Settings
from stream.topics import Topics


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    reason: str
    stage: str
    error: str
    original_topic: str | None

    def summary(self) -> dict[str, Any]:
        return {
            "offset": f"{self.partition}:{self.offset}",
            "reason": self.reason,
            "stage": self.stage,
            "error": self.error,
            "original_topic": self.original_topic,
            "bytes": len(self.value),
            "preview": self.value[:120].decode("utf-8", "replace"),
        }


def _dead_letter(record: ConsumerRecord[bytes, bytes]) -> DeadLetter:
    headers = list(record.headers)
    return DeadLetter(
        record.partition,
        record.offset,
        record.key,
        record.value or b"",
        header_value(headers, "reason") or "unknown",
        header_value(headers, "stage") or "unknown",
        header_value(headers, "error") or "",
        header_value(headers, "original_topic"),
    )


async def read_dead_letters(
    settings: Settings, *, handoff: bool = False, group: str | None = None, limit: int = 1000
) -> tuple[list[DeadLetter], AIOKafkaConsumer]:
    """Dead letters from the beginning (or from the group's position); caller stops consumer."""
    topics = Topics.from_settings(settings)
    topic = topics.handoff_deadletter if handoff else topics.deadletter
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or {0})]
    consumer.assign(parts)
    ends = await consumer.end_offsets(parts)
    if group is None:
        await consumer.seek_to_beginning(*parts)
    found: list[DeadLetter] = []
    while len(found) < limit and any([await _behind(consumer, tp, ends[tp]) for tp in parts]):
        batch = await consumer.getmany(timeout_ms=1000, max_records=limit - len(found))
        for records in batch.values():
            found.extend(_dead_letter(r) for r in records)
    return found, consumer


async def _behind(consumer: AIOKafkaConsumer, tp: TopicPartition, end: int) -> bool:
    return bool(await consumer.position(tp) < end)


def select(
    letters: list[DeadLetter], reason: str | None, stage: str | None
) -> Iterator[DeadLetter]:
    for letter in letters:
        if (reason is None or letter.reason == reason) and (stage is None or letter.stage == stage):
            yield letter


async def list_dead_letters(
    settings: Settings, *, handoff: bool, reason: str | None, limit: int
) -> list[dict[str, Any]]:
    letters, consumer = await read_dead_letters(settings, handoff=handoff, limit=limit)
    await consumer.stop()
    return [d.summary() for d in select(letters, reason, None)]


async def redrive(
    settings: Settings, *, reason: str | None, stage: str | None, dry_run: bool
) -> dict[str, int]:
    """Send matching dead letters back to their original topic; commit the group's position."""
    group = f"{settings.topic_prefix}leadstream-redrive"
    letters, consumer = await read_dead_letters(settings, group=group, limit=100_000)
    counts = {"seen": len(letters), "redriven": 0, "no_topic": 0, "skipped": 0}
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        futures = []
        chosen = set()
        for letter in select(letters, reason, stage):
            chosen.add((letter.partition, letter.offset))
            if letter.original_topic is None:
                counts["no_topic"] += 1
                continue
            counts["redriven"] += 1
            if not dry_run:
                futures.append(
                    await producer.send(
                        letter.original_topic,
                        key=letter.key,
                        value=letter.value,
                        headers=[("redriven_from", f"{letter.partition}:{letter.offset}".encode())],
                    )
                )
        for fut in futures:
            await fut
        counts["skipped"] = len(letters) - len(chosen)
        if not dry_run and letters:
            # Everything read is settled: re-driven, or not wanted by this filter. A later
            # run with another filter starts after these; `list` still shows all of them.
            await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()
    return counts
