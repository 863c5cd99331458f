"""A notifier starting on just-created topics logs no errors, and exports its delivery series
at 0 from the start (issue 28, item 12: three `ERROR ... NotLeaderForPartitionError` lines at
every start, from aiokafka's first offset reset on partitions whose leader was not serving
yet; retried by aiokafka, harmless, but an operator cannot tell)."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY

from stream.metrics import DELIVERY_OUTCOMES
from stream.notify.service import Notifier
from stream.settings import Settings
from stream.topics import Topics

from .conftest import handoff_data, handoff_headers
from .test_notifier_integration import Factory, config

pytestmark = pytest.mark.integration


async def test_fresh_topics_no_errors_and_series_from_the_start(
    settings: Settings, receiver_factory: Factory, caplog: Any
) -> None:
    caplog.set_level(logging.INFO)
    receiver = await receiver_factory()
    # `settings` has just created the test's topics: start on them at once, as a notifier
    # that created its own topics does.
    notifier = Notifier(settings, config(settings, webhook_url=receiver.url))
    await notifier.start()
    try:
        for outcome in DELIVERY_OUTCOMES:
            labels = {"sink": "webhook", "outcome": outcome}
            assert (
                REGISTRY.get_sample_value("leadstream_notifier_deliveries_total", labels)
                is not None
            )
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
        await producer.start()
        try:
            topic = Topics.from_settings(settings).handoff
            for partition in range(settings.partitions):  # every partition resets its offset
                await producer.send_and_wait(
                    topic,
                    orjson.dumps(handoff_data(f"lead-{partition}")),
                    f"lead-{partition}".encode(),
                    headers=handoff_headers(f"ce-{partition}", f"lead-{partition}"),
                    partition=partition,
                )
        finally:
            await producer.stop()
        await receiver.wait_for(settings.partitions)
    finally:
        await notifier.stop(grace=0)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [f"{r.name}: {r.getMessage()}" for r in errors]
