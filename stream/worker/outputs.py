"""Produce a checkpoint's records with the producer's batch API and wait for every ack.

One `await producer.send()` per record costs ~20 µs of Python each (~50k records/s on this
machine, docs/benchmarks.md); a checkpoint instead fills one `BatchBuilder` per topic
partition (~400k records/s) and submits them all before it waits. Records keep their order
within a partition, as `send` would. A keyed record goes where Kafka's default partitioner
puts it (`stream.topics.partition_for`), so readers that look a key up by partition find it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer

from stream.deadletters.record import Headers
from stream.topics import partition_for

MAX_BATCH_BYTES = 512 * 1024  # below the broker's default message.max.bytes (1 MiB)


class Outgoing(NamedTuple):
    """One record to produce."""

    topic: str
    key: bytes | None
    value: bytes | None
    """None: a tombstone (a changelog delete)."""
    headers: Headers
    partition: int | None = None
    """None: by key, as Kafka's default partitioner."""


class BatchProducer:
    """Groups records by topic partition, submits one batch per group, awaits the acks."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        partitions: Mapping[str, int],
        partitioner: Callable[[bytes, int], int] = partition_for,
    ):
        self.producer = producer
        self.partitions = dict(partitions)  # topic -> partition count
        self.partitioner = partitioner

    @classmethod
    async def for_topics(
        cls,
        producer: AIOKafkaProducer,
        topics: Sequence[str],
        partitioner: Callable[[bytes, int], int] = partition_for,
    ) -> BatchProducer:
        """With the partition counts of `topics` (each must exist)."""
        counts = {}
        for topic in topics:
            found = await producer.partitions_for(topic)
            counts[topic] = len(found)
        return cls(producer, counts, partitioner)

    def partition_of(self, record: Outgoing) -> int:
        if record.partition is not None:
            return record.partition
        count = self.partitions[record.topic]
        if record.key is None:
            return random.randrange(count)
        return self.partitioner(record.key, count)

    async def produce(self, records: Sequence[Outgoing]) -> dict[tuple[str, int], int]:
        """Produce `records`; once every one is acknowledged, return the last offset written
        per (topic, partition). A failed batch raises (KafkaError) after all were awaited."""
        builders: dict[tuple[str, int], list[Any]] = {}
        for record in records:
            where = (record.topic, self.partition_of(record))
            chain = builders.get(where)
            if chain is None:
                chain = builders[where] = [self.producer.create_batch()]
            added = chain[-1].append(
                timestamp=None, key=record.key, value=record.value, headers=record.headers
            )
            if added is None:  # full (and closed): start the next batch of this partition
                chain.append(self.producer.create_batch())
                if (
                    chain[-1].append(
                        timestamp=None, key=record.key, value=record.value, headers=record.headers
                    )
                    is None
                ):
                    raise ValueError(f"a record for {record.topic} does not fit in a batch")
        sent: list[tuple[tuple[str, int], int, asyncio.Future[Any]]] = []
        for (topic, partition), chain in builders.items():
            for builder in chain:
                builder.close()  # nothing else may add to it (`send` would, if it were open)
                count = builder.record_count()
                future = await self.producer.send_batch(builder, topic, partition=partition)
                sent.append(((topic, partition), count, future))
        results = await asyncio.gather(*(f for _w, _c, f in sent), return_exceptions=True)
        last: dict[tuple[str, int], int] = {}
        for (where, count, _f), result in zip(sent, results, strict=True):
            if isinstance(result, BaseException):
                raise result
            last[where] = max(last.get(where, -1), result.offset + count - 1)
        return last
