"""A starting offset for every input partition, committed before the worker first consumes.

faust-streaming 0.15.3 throws away fetched records it cannot deliver at that moment (the
stream's flow stopped while recovery runs, a partition paused) and "seeks back to the
committed offset" to read them again. A partition with no committed offset has nowhere to go
back to: its position stays past the dropped records, which are never processed, and the
group's commits never move again (seen in tests/integration/test_worker_recovery.py when a
new worker was killed before its first commit). The same Faust code treats a committed offset
of 0 as none at all (`if committed_offset:`), so a hole at the very start of a partition could
even be committed past. Committing each partition's beginning once, for a new consumer group,
gives every seek a target and takes the start of the partition out of that case. This is what
`consumer_auto_offset_reset="earliest"` would choose anyway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    CoordinatorLoadInProgressError,
    GroupCoordinatorNotAvailableError,
    KafkaError,
    NotCoordinatorForGroupError,
)

from stream.lag import partitions_of
from stream.settings import Settings

COORDINATOR_STARTING = (
    GroupCoordinatorNotAvailableError,
    CoordinatorLoadInProgressError,
    NotCoordinatorForGroupError,
)
log = logging.getLogger("leadstream.worker")


def worker_group(settings: Settings) -> str:
    """The workers' consumer group, whichever input path they run (`LEADSTREAM_WORKER_INPUT`):
    committed offsets carry over a switch, and the broker refuses a group that mixes the
    two (their assignors differ), so no partition is ever scored by both."""
    return f"{settings.topic_prefix}leadstream-worker"


async def seed_group_offsets(
    bootstrap: str, group: str, topics: list[str], *, coordinator_wait: float = 20.0
) -> int:
    """Commit the beginning of every partition of `topics` that `group` has no offset for.

    Returns how many were committed. On a fresh broker the group coordinator (the offsets
    topic) takes a moment to come up: that is waited for, up to `coordinator_wait` seconds.
    With other members of the group already running the broker refuses a commit from outside
    the group; that is logged and the worker starts anyway (those members have committed
    offsets by then).
    """
    deadline = time.monotonic() + coordinator_wait
    while True:
        try:
            return await _seed(bootstrap, group, topics)
        except COORDINATOR_STARTING:
            if time.monotonic() > deadline:
                log.warning(
                    "the group coordinator for %s did not come up in %.0fs; starting without "
                    "committed starting offsets (the gap guard still finds holes)",
                    group,
                    coordinator_wait,
                )
                return 0
            await asyncio.sleep(0.5)
        except KafkaError as exc:
            log.warning(
                "could not commit starting offsets for %s (%s); starting anyway", group, exc
            )
            return 0


async def _seed(bootstrap: str, group: str, topics: list[str]) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    try:
        await admin.start()
        await consumer.start()
        committed = await admin.list_consumer_group_offsets(group)
        missing = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(await partitions_of(consumer, topic))
            if TopicPartition(topic, p) not in committed
        ]
        if not missing:
            return 0
        consumer.assign(missing)
        beginnings = await consumer.beginning_offsets(missing)
        await consumer.commit({tp: beginnings[tp] for tp in missing})
        return len(missing)
    finally:
        await consumer.stop()
        await admin.close()


async def starting_offsets(
    bootstrap: str, group: str, partitions: Iterable[TopicPartition]
) -> dict[TopicPartition, int]:
    """Where each partition's first record must come from: the group's committed offset,
    else the partition's beginning (the worker reads from the earliest offset)."""
    wanted = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        await admin.start()
        await consumer.start()
        found = await admin.list_consumer_group_offsets(group)
        out = {tp: found[tp].offset for tp in wanted if tp in found and found[tp].offset >= 0}
        rest = [tp for tp in wanted if tp not in out]
        if rest:
            out.update(await consumer.beginning_offsets(rest))
        return out
    finally:
        await consumer.stop()
        await admin.close()
