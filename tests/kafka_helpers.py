"""Small helpers for tests that talk to the real broker: produce, and read a topic to its end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord


async def produce(
    bootstrap: str, topic: str, records: Sequence[tuple[bytes | None, bytes]]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        futures = [await producer.send(topic, key=k, value=v) for k, v in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def produce_events(bootstrap: str, topic: str, events: Sequence[dict[str, Any]]) -> None:
    def key(e: dict[str, Any]) -> bytes:
        return str(e.get("anonymous_id") or e.get("user_id") or e.get("email")).encode()

    await produce(bootstrap, topic, [(key(e), orjson.dumps(e)) for e in events])


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[ConsumerRecord[bytes, bytes]]], bool],
    timeout: float = 60.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read from the beginning until `until(records)` holds; fail loudly on timeout."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while not until(records):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout:.0f}s reading {topic}: got {len(records)} records"
                )
            batch = await consumer.getmany(timeout_ms=500)
            for part in batch.values():
                records.extend(part)
        return records
    finally:
        await consumer.stop()


def headers_of(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers}


async def read_all(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of a topic up to its end offsets at the time of the call."""
    # "earliest": a "latest" reset started on `assign` could land after the seek below
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        parts = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])
        ]
        if not parts:
            await consumer._client.force_metadata_update()
            parts = [
                TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])
            ]
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        for tp, start in (await consumer.beginning_offsets(parts)).items():
            consumer.seek(tp, start)
        records: list[ConsumerRecord[bytes, bytes]] = []
        while any([await consumer.position(tp) < ends[tp] for tp in parts]):
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(
                    r for r in batch if r.offset < ends[TopicPartition(r.topic, r.partition)]
                )
        return records
    finally:
        await consumer.stop()


async def produce_records(
    bootstrap: str, topic: str, records: Sequence[tuple[bytes, bytes, list[tuple[str, bytes]]]]
) -> None:
    """(key, value, headers) records, acknowledged."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        futures = [await producer.send(topic, key=k, value=v, headers=h) for k, v, h in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
