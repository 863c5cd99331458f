"""Topic creation: right partition counts, twice is harmless, a mismatch is refused clearly."""

from __future__ import annotations

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream.errors import SettingsError
from stream.settings import Settings
from stream.topics import Topics, ensure_topics

pytestmark = pytest.mark.integration


async def partitions(bootstrap: str, names: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(names)}
    finally:
        await admin.close()


async def test_created_with_expected_partitions_and_idempotent(settings: Settings) -> None:
    await ensure_topics(settings)  # the fixture already ran it once
    topics = Topics.from_settings(settings)
    assert await partitions(settings.kafka_bootstrap, list(topics.all())) == topics.all()
    assert topics.all()[topics.deadletter] == 1


async def test_partition_mismatch_is_refused(base_settings: Settings) -> None:
    settings = base_settings.replace(topic_prefix="mismatch.")
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic("mismatch.leads.handoff", 2, 1)])
    finally:
        await admin.close()
    with pytest.raises(SettingsError, match=r"mismatch.leads.handoff.*LEADSTREAM_PARTITIONS=4"):
        await ensure_topics(settings)


async def test_the_worker_changelogs_are_created_compacted_before_faust_starts(
    settings: Settings,
) -> None:
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    from stream.worker.app import changelogs

    names = changelogs(settings)
    assert f"{settings.topic_prefix}leadstream-worker-lead_state-changelog" in names
    await ensure_topics(settings, compacted=names)
    assert await partitions(settings.kafka_bootstrap, list(names)) == dict.fromkeys(names, 4)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
    finally:
        await admin.close()
    policies = {
        resource[3]: {entry[0]: entry[1] for entry in resource[4]}["cleanup.policy"]
        for response in described
        for resource in response.resources
    }
    assert policies == dict.fromkeys(names, "compact")
