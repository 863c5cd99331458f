"""Consumer lag against the real broker: `group_lag` and the exporter behind the lag gauge."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import REGISTRY

from stream.dev.process import free_port
from stream.lag import export_lag_forever, group_lag
from stream.settings import Settings
from stream.topics import Topics

pytestmark = pytest.mark.integration

ROLE = "lagtest"  # not a real process role: other tests in this process set those


async def produce_to_partition(bootstrap: str, topic: str, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(count):
            await producer.send_and_wait(topic, value=b"%d" % i, key=b"k", partition=0)
    finally:
        await producer.stop()


async def commit(bootstrap: str, group: str, topic: str, offset: int) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.commit({tp: offset})
    finally:
        await consumer.stop()


def lag_sample(topic: str, role: str = ROLE) -> float | None:
    return REGISTRY.get_sample_value(
        "leadstream_consumer_lag_records", {"role": role, "topic": topic}
    )


def failures(role: str) -> float:
    return REGISTRY.get_sample_value("leadstream_consumer_lag_failures_total", {"role": role}) or 0


async def eventually(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def handoff_with_records(settings: Settings) -> tuple[str, str]:
    """The test's handoff topic with 5 records on partition 0, and a group name for it."""
    topic = Topics.from_settings(settings).handoff
    await produce_to_partition(settings.kafka_bootstrap, topic, 5)
    return topic, f"{settings.topic_prefix}lag-group"


@contextlib.asynccontextmanager
async def exporting(run: Coroutine[Any, Any, None]) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(run)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_group_lag_counts_uncommitted_records(
    settings: Settings, handoff_with_records: tuple[str, str]
) -> None:
    topic, group = handoff_with_records
    bootstrap = settings.kafka_bootstrap
    assert await group_lag(bootstrap, group, [topic]) == {topic: 5}  # nothing committed yet
    await commit(bootstrap, group, topic, 3)
    assert await group_lag(bootstrap, group, [topic]) == {topic: 2}
    await commit(bootstrap, group, topic, 5)
    assert await group_lag(bootstrap, group, [topic]) == {topic: 0}


async def test_exporter_sets_the_gauge_by_role_and_unprefixed_topic(
    settings: Settings, handoff_with_records: tuple[str, str]
) -> None:
    topic, group = handoff_with_records
    bootstrap = settings.kafka_bootstrap
    unprefixed = topic.removeprefix(settings.topic_prefix)
    assert unprefixed == "leads.handoff"
    await commit(bootstrap, group, topic, 1)
    run = export_lag_forever(
        bootstrap, group, [topic], role=ROLE, prefix=settings.topic_prefix, interval=0.1
    )
    async with exporting(run) as task:
        await eventually(lambda: lag_sample(unprefixed) == 4, "lag 4 on the gauge")
        await commit(bootstrap, group, topic, 5)
        await eventually(lambda: lag_sample(unprefixed) == 0, "the gauge following the commit")
        assert lag_sample(topic) is None  # the prefixed name never becomes a label value
        assert not task.done()
    assert task.cancelled()


async def test_exporter_survives_an_unreachable_broker_and_stays_cancellable() -> None:
    role = "lagtest-down"
    before = failures(role)
    down = f"127.0.0.1:{free_port()}"
    run = export_lag_forever(down, "g", ["t"], role=role, prefix="", interval=0.05)
    async with exporting(run) as task:
        await eventually(lambda: failures(role) >= before + 3, "three failed rounds")
        assert not task.done()  # failures are logged and counted, never raised
    assert task.cancelled()
    assert lag_sample("t", role) is None
