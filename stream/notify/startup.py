"""What the notifier waits for before it consumes: a broker that serves its first requests."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

SERVED_WITHIN_SECONDS = 30.0  # then the consumer starts anyway (and aiokafka retries, loudly)


async def wait_until_served(bootstrap: str, topics: Mapping[str, int], group: str) -> None:
    """Return once the broker serves what the notifier's consumer asks for first: its group's
    coordinator, and read-committed offsets from every partition of `topics` (name ->
    partitions).

    On just-created topics the partitions' leaders do not serve those offsets for a moment, and
    on a fresh broker the group coordinator is not there until the offsets topic is. The
    consumer's first requests then failed, and aiokafka, which retries both, logged each failure
    at ERROR (`NotLeaderForPartitionError` three times at every fresh start,
    `GroupCoordinatorNotAvailableError` once per new broker). The same requests made here are
    retried without a log line, so the consumer meets a broker that answers.
    """
    deadline = time.monotonic() + SERVED_WITHIN_SECONDS
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        while True:
            try:
                await admin.find_coordinator(group)
                break
            except KafkaError as exc:
                if not exc.retriable or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
    finally:
        await admin.close()
    probe = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed"
    )
    await probe.start()
    try:
        partitions = [TopicPartition(t, p) for t, count in topics.items() for p in range(count)]
        with contextlib.suppress(KafkaError):  # retried until the client's request timeout
            await probe.beginning_offsets(partitions)
    finally:
        await probe.stop()
