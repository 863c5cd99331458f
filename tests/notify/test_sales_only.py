"""Sales sinks get sales transitions (issue 28, item 11): about half of all sales webhooks were
`anonymous -> lead` identifies with no route. They stay on the handoff topic, are counted as
skipped, and reach the sinks only with LEADSTREAM_NOTIFIER_HANDOFFS=all."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY

from stream.lag import group_lag
from stream.notify.service import Notifier
from stream.settings import Settings
from stream.topics import Topics
from tests.kafka_helpers import read_all

from .conftest import handoff_data, handoff_headers
from .test_notifier_integration import Factory, config, eventually

pytestmark = pytest.mark.integration

NO_ROUTE = {"queue": None, "priority": None, "sla": None, "task": None}


async def produce_pair(settings: Settings) -> None:
    """An identify (anonymous -> lead, no route: as the worker writes it, without ce_route or
    ce_priority) and a hand-raise, in that order on one partition."""
    identify = handoff_data(
        "lead-9", seq=1, from_stage="anonymous", to_stage="lead", reason="identify", route=NO_ROUTE
    )
    identify_headers = [
        (k, v)
        for k, v in handoff_headers(
            "ce-identify", "lead-9", ce_tostage="lead", ce_fromstage="anonymous"
        )
        if k not in ("ce_route", "ce_priority")
    ]
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        topic = Topics.from_settings(settings).handoff
        await producer.send_and_wait(
            topic, orjson.dumps(identify), b"lead-9", headers=identify_headers, partition=0
        )
        raised = handoff_data("lead-9", seq=2, from_stage="lead", reason="fast_lane")
        await producer.send_and_wait(
            topic,
            orjson.dumps(raised),
            b"lead-9",
            headers=handoff_headers("ce-raise", "lead-9"),
            partition=0,
        )
    finally:
        await producer.stop()


@pytest.fixture
async def running() -> AsyncIterator[Callable[[Notifier], Awaitable[Notifier]]]:
    started: list[Notifier] = []

    async def start(notifier: Notifier) -> Notifier:
        await notifier.start()
        started.append(notifier)
        return notifier

    yield start
    for notifier in started:
        await notifier.stop(grace=0)


def skipped() -> float:
    value = REGISTRY.get_sample_value(
        "leadstream_notifier_deliveries_total", {"sink": "webhook", "outcome": "skipped"}
    )
    return value or 0.0


async def settled(settings: Settings, group: str) -> bool:
    lag = await group_lag(settings.kafka_bootstrap, group, [Topics.from_settings(settings).handoff])
    return sum(lag.values()) == 0


async def test_sales_sinks_get_sales_transitions_only(
    settings: Settings, receiver_factory: Factory, running: Any
) -> None:
    assert settings.notifier_handoffs == "sales"  # the default
    receiver = await receiver_factory()
    cfg = config(settings, webhook_url=receiver.url)
    before = skipped()
    await running(Notifier(settings, cfg))
    await produce_pair(settings)
    (seen,) = await receiver.wait_for(1)
    assert seen.headers["webhook-id"] == "ce-raise"
    await eventually(lambda: settled(settings, cfg.group_id))  # the identify settled too
    assert len(receiver.seen) == 1
    assert skipped() == before + 1
    # The topic still carries everything.
    on_topic = await read_all(settings.kafka_bootstrap, Topics.from_settings(settings).handoff)
    assert len(on_topic) == 2


async def test_every_transition_when_asked_for(
    settings: Settings, receiver_factory: Factory, running: Any
) -> None:
    settings = settings.replace(notifier_handoffs="all")
    receiver = await receiver_factory()
    await running(Notifier(settings, config(settings, webhook_url=receiver.url)))
    await produce_pair(settings)
    seen = await receiver.wait_for(2)
    assert sorted(s.headers["webhook-id"] for s in seen) == ["ce-identify", "ce-raise"]


def test_a_bad_value_is_named() -> None:
    from stream.errors import SettingsError

    with pytest.raises(SettingsError, match="NOTIFIER_HANDOFFS='sql': want sales or all"):
        Settings.from_env({"LEADSTREAM_NOTIFIER_HANDOFFS": "sql"})
