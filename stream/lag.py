"""Consumer lag computed by leadstream itself, so a plain Prometheus scrape shows it."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError


async def group_lag(bootstrap: str, group: str, topics: list[str]) -> dict[str, int]:
    """topic -> records not yet committed by `group` (uncommitted partitions count in full)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        try:
            committed = await admin.list_consumer_group_offsets(group)
        except GroupCoordinatorNotAvailableError:
            # A fresh broker has no coordinator until some group has been used: nothing is
            # committed yet, so everything counts as lag.
            committed = {}
        partitions = [
            TopicPartition(t, p)
            for t in topics
            for p in sorted(consumer.partitions_for_topic(t) or await _partitions(consumer, t))
        ]
        ends = await consumer.end_offsets(partitions) if partitions else {}
        lag: dict[str, int] = dict.fromkeys(topics, 0)
        for tp, end in ends.items():
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            lag[tp.topic] += max(0, end - done)
        return lag
    finally:
        await consumer.stop()
        await admin.close()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or set()
