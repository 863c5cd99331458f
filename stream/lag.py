"""Consumer lag computed by leadstream itself, so a plain Prometheus scrape shows it."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError

from stream import metrics

log = logging.getLogger(__name__)


async def group_lag(bootstrap: str, group: str, topics: list[str]) -> dict[str, int]:
    """topic -> records not yet committed by `group` (uncommitted partitions count in full)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        # Started inside the `try`: a failed start still closes both (no leaked connections
        # when the exporter keeps retrying against a broker that is down).
        await admin.start()
        await consumer.start()
        try:
            committed = await admin.list_consumer_group_offsets(group)
        except GroupCoordinatorNotAvailableError:
            # A fresh broker has no coordinator until some group has been used: nothing is
            # committed yet, so everything counts as lag.
            committed = {}
        partitions = [
            TopicPartition(t, p)
            for t in topics
            for p in sorted(consumer.partitions_for_topic(t) or await partitions_of(consumer, t))
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


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    """A topic's partitions, asking the broker when the client has no metadata for it yet."""
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or set()


async def export_lag_forever(
    bootstrap: str,
    group: str,
    topics: list[str],
    *,
    role: str,
    prefix: str,
    interval: float = 15.0,
) -> None:
    """Set `leadstream_consumer_lag_records{role, topic}` for `group` now and every `interval`.

    Labels stay a small fixed set: `role` is the process kind ("worker", "notifier"), never the
    group name, and `topic` drops the configured prefix (a per-deployment or per-test tag), so
    dashboards and alerts work the same whatever the prefix. A failed round (broker down, group
    rebalancing) logs a warning, counts in `leadstream_consumer_lag_failures_total` and leaves
    the last values in place; the loop only ends when cancelled.
    """
    failures = metrics.CONSUMER_LAG_FAILURES.labels(role=role)  # exported as 0 from the start
    # A round that hangs (unreachable broker) must not stall the loop for good.
    timeout = max(2 * interval, 10.0)
    while True:
        try:
            async with asyncio.timeout(timeout):
                lag = await group_lag(bootstrap, group, topics)
        except Exception as exc:  # noqa: BLE001 - metrics must never take the process down
            failures.inc()
            log.warning("consumer lag of the %s group not updated: %r", role, exc)
        else:
            for topic, records in lag.items():
                metrics.CONSUMER_LAG.labels(role=role, topic=topic.removeprefix(prefix)).set(
                    records
                )
        await asyncio.sleep(interval)
