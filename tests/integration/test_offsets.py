"""Starting offsets for a new consumer group, committed before the worker joins it."""

from __future__ import annotations

import logging
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from stream.settings import Settings
from stream.topics import Topics
from stream.worker.offsets import seed_group_offsets

pytestmark = pytest.mark.integration


async def test_a_new_group_gets_every_beginning_without_a_warning(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A group the coordinator has never seen (as on a fresh broker): the commit waits for
    the coordinator instead of giving up with "could not commit starting offsets"."""
    topics = Topics.from_settings(settings).channel_topics
    group = f"fresh-{uuid.uuid4().hex[:8]}"
    with caplog.at_level(logging.WARNING, logger="leadstream.worker"):
        seeded = await seed_group_offsets(settings.kafka_bootstrap, group, topics)
    assert seeded == len(topics) * settings.partitions
    assert not [r for r in caplog.records if "starting offsets" in r.getMessage()]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    assert {tp.topic for tp in committed} == set(topics)
    assert all(meta.offset == 0 for meta in committed.values())
    # again: nothing left to seed
    assert await seed_group_offsets(settings.kafka_bootstrap, group, topics) == 0
