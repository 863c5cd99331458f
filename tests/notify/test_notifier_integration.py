"""The notifier against the real broker and Redis, with local receivers (HTTP and SMTP)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from email import message_from_bytes
from email.message import Message
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiosmtpd.controller import Controller
from standardwebhooks import Webhook

from stream.deadletters.record import header_value
from stream.dev.process import free_port
from stream.notify import NotifierConfig, service
from stream.notify.deliverylog import DeliveryLog
from stream.notify.routes import Routes
from stream.notify.service import Notifier
from stream.settings import Settings
from stream.topics import Topics

from .conftest import SECRET, Receiver, handoff_data, handoff_headers

pytestmark = pytest.mark.integration

Factory = Callable[..., Awaitable[Receiver]]


def config(settings: Settings, **overrides: Any) -> NotifierConfig:
    values: dict[str, Any] = {
        "group_id": f"{settings.topic_prefix}notifier",
        "webhook_secrets": (SECRET,),
        "attempts": 3,
        "backoff_seconds": 0.05,
        "timeout_seconds": 1.0,
        "commit_interval_seconds": 0.2,
        "allow_private_urls": True,
    }
    values.update(overrides)
    return NotifierConfig.from_settings(settings, **values)


async def produce(
    settings: Settings,
    ce_id: str,
    *,
    lead_id: str = "lead-1",
    priority: str = "P2",
    value: bytes | None = None,
) -> bytes:
    """Write one handoff as the worker does; returns the value bytes."""
    route = {"queue": "ae", "priority": priority, "sla": "1h", "task": None}
    body = value if value is not None else orjson.dumps(handoff_data(lead_id, route=route))
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            Topics.from_settings(settings).handoff,
            value=body,
            key=lead_id.encode(),
            headers=handoff_headers(ce_id, lead_id, priority),
        )
    finally:
        await producer.stop()
    return body


async def dead_letters(settings: Settings, count: int, timeout: float = 20.0) -> list[Any]:
    consumer = AIOKafkaConsumer(
        Topics.from_settings(settings).handoff_deadletter,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < count and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    assert len(records) >= count, f"{len(records)} dead letters, wanted {count}"
    return records


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


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


async def test_delivers_signed_and_remembers(
    settings: Settings, redis_client: Any, receiver_factory: Factory, running: Any
) -> None:
    receiver = await receiver_factory()
    await running(Notifier(settings, config(settings, webhook_url=receiver.url)))
    value = await produce(settings, "ce-ok")
    (seen,) = await receiver.wait_for(1)
    assert seen.body == value
    assert Webhook(SECRET).verify(seen.body, seen.headers)["lead_id"] == "lead-1"
    assert seen.headers["webhook-id"] == "ce-ok"
    key = f"{settings.redis_prefix}delivered:webhook:ce-ok"
    await eventually(lambda: redis_client.exists(key))
    assert 29 * 86400 < await redis_client.ttl(key) <= 30 * 86400
    log = DeliveryLog(redis_client, settings.redis_prefix)
    (entry,) = await eventually(lambda: log.read("lead-1"))
    assert entry["status"] == "delivered" and entry["attempts"] == 1 and entry["sink"] == "webhook"


async def test_failures_then_success_are_retried_with_same_id(
    settings: Settings, receiver_factory: Factory, running: Any
) -> None:
    async def flaky(request: web.Request, n: int) -> web.StreamResponse:
        if n == 1:
            return web.Response(status=503)
        if n == 2:
            await asyncio.sleep(3)  # longer than the 1 s timeout
        return web.Response(text="ok")

    receiver = await receiver_factory(flaky)
    await running(Notifier(settings, config(settings, webhook_url=receiver.url)))
    await produce(settings, "ce-flaky")
    seen = await receiver.wait_for(3)
    assert {s.headers["webhook-id"] for s in seen} == {"ce-flaky"}
    await asyncio.sleep(0.5)
    assert len(receiver.seen) == 3


async def test_429_retry_after_is_honoured(
    settings: Settings, receiver_factory: Factory, running: Any
) -> None:
    async def limited(request: web.Request, n: int) -> web.StreamResponse:
        if n == 1:
            return web.Response(status=429, headers={"Retry-After": "1"})
        return web.Response(text="ok")

    receiver = await receiver_factory(limited)
    await running(Notifier(settings, config(settings, webhook_url=receiver.url)))
    await produce(settings, "ce-429")
    first, second = await receiver.wait_for(2)
    assert second.at - first.at >= 0.9  # the 0.05 s backoff alone would retry at once


async def test_permanent_failure_is_dead_lettered_unchanged(
    settings: Settings, redis_client: Any, receiver_factory: Factory, running: Any
) -> None:
    async def reject(request: web.Request, n: int) -> web.StreamResponse:
        return web.Response(status=400, text="bad payload")

    receiver = await receiver_factory(reject)
    await running(Notifier(settings, config(settings, webhook_url=receiver.url)))
    value = await produce(settings, "ce-400")
    (record,) = await dead_letters(settings, 1)
    assert len(receiver.seen) == 1  # permanent: no retry
    assert record.value == value and record.key == b"lead-1"
    headers = list(record.headers)
    assert header_value(headers, "ce_id") == "ce-400"
    assert header_value(headers, "ce_type") == "leadstream.lead.stage_changed.v1"
    assert header_value(headers, "reason") == "delivery_permanent"
    assert header_value(headers, "stage") == "notifier"
    assert header_value(headers, "sink") == "webhook"
    assert header_value(headers, "original_topic") == Topics.from_settings(settings).handoff
    assert header_value(headers, "original_offset") == "0"
    assert "HTTP 400" in (header_value(headers, "error") or "")
    assert not await redis_client.exists(f"{settings.redis_prefix}delivered:webhook:ce-400")


async def test_exhausted_retries_are_dead_lettered_when_the_schedule_is_spent(
    settings: Settings, redis_client: Any, receiver_factory: Factory, running: Any
) -> None:
    async def down(request: web.Request, n: int) -> web.StreamResponse:
        return web.Response(status=503)

    receiver = await receiver_factory(down)
    cfg = config(settings, webhook_url=receiver.url, schedule=(0.3, 0.3))
    await running(Notifier(settings, cfg))
    await produce(settings, "ce-503")
    (record,) = await dead_letters(settings, 1)
    assert len(receiver.seen) == 5  # 3 quick attempts, then the schedule's 2
    assert header_value(list(record.headers), "reason") == "delivery_exhausted"
    assert header_value(list(record.headers), "attempts") == "5"
    assert header_value(list(record.headers), "sink") == "webhook"
    assert not await redis_client.exists(f"{settings.redis_prefix}parked:webhook:ce-503")


async def test_malformed_record_is_dead_lettered(
    settings: Settings, receiver_factory: Factory, running: Any
) -> None:
    receiver = await receiver_factory()
    await running(Notifier(settings, config(settings, webhook_url=receiver.url)))
    await produce(settings, "ce-bad", value=b"{not json")
    (record,) = await dead_letters(settings, 1)
    assert record.value == b"{not json"
    assert header_value(list(record.headers), "reason") == "invalid_json"
    assert receiver.seen == []


async def test_redelivery_after_restart_is_not_delivered_twice(
    settings: Settings, redis_client: Any, receiver_factory: Factory
) -> None:
    receiver = await receiver_factory()
    first = Notifier(settings, config(settings, webhook_url=receiver.url))
    await first.start()
    try:
        await produce(settings, "ce-once")
        await receiver.wait_for(1)
        await eventually(
            lambda: redis_client.exists(f"{settings.redis_prefix}delivered:webhook:ce-once")
        )
    finally:
        await first.stop()
    # The same ce_id again (a replay), and a restart that lost its offsets (another group):
    await produce(settings, "ce-once")
    await produce(settings, "ce-sentinel")
    second = Notifier(
        settings, config(settings, webhook_url=receiver.url, group_id=f"{settings.topic_prefix}n2")
    )
    await second.start()
    try:
        await eventually(lambda: _seen_ids(receiver, "ce-sentinel"))
    finally:
        await second.stop()
    ids = [s.headers["webhook-id"] for s in receiver.seen]
    assert ids == ["ce-once", "ce-sentinel"]
    log = await DeliveryLog(redis_client, settings.redis_prefix).read("lead-1")
    assert sorted(e["status"] for e in log if e["ce_id"] == "ce-once") == [
        "deduped",
        "deduped",
        "delivered",
    ]


async def _seen_ids(receiver: Receiver, ce_id: str) -> bool:
    return any(s.headers["webhook-id"] == ce_id for s in receiver.seen)


async def test_p1_is_not_queued_behind_stalled_routine_deliveries(
    settings: Settings, receiver_factory: Factory, running: Any
) -> None:
    async def stalled_unless_p1(request: web.Request, n: int) -> web.StreamResponse:
        if request.headers.get("ce-priority") != "P1":
            await asyncio.sleep(30)  # the routine receiver hangs
        return web.Response(text="ok")

    receiver = await receiver_factory(stalled_unless_p1)
    await running(
        Notifier(
            settings,
            config(
                settings,
                webhook_url=receiver.url,
                timeout_seconds=20.0,
                routine_lane_concurrency=2,
                fast_lane_concurrency=2,
            ),
        )
    )
    for i in range(6):  # same lead, same partition: the P1 sits behind them in the log
        await produce(settings, f"ce-routine-{i}", priority="P3")
    await produce(settings, "ce-p1", priority="P1")
    await eventually(lambda: _seen_ids(receiver, "ce-p1"), timeout=8.0)
    routine = [s for s in receiver.seen if s.headers["ce-priority"] != "P1"]
    assert len(routine) == 2  # both routine workers still stuck on their first delivery


class Inbox:
    """aiosmtpd handler that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


async def test_email_through_a_real_smtp_server(settings: Settings, running: Any) -> None:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        cfg = config(
            settings,
            smtp_host="127.0.0.1",
            smtp_port=controller.port,
            smtp_from="leadstream@example.test",
            smtp_to=("sales@example.test",),
        )
        await running(Notifier(settings, cfg, routes=Routes((), ("email",))))
        await produce(settings, "ce-mail", priority="P1")

        async def received() -> bool:
            return bool(inbox.messages)

        await eventually(received)
    finally:
        controller.stop()
    sender, recipients, content = inbox.messages[0]
    assert sender == "leadstream@example.test" and recipients == ["sales@example.test"]
    msg: Message = message_from_bytes(content)
    assert msg["X-Leadstream-Event-Id"] == "ce-mail"
    types = [part.get_content_type() for part in msg.walk()]
    assert "text/plain" in types and "text/html" in types


async def test_run_serves_metrics_and_health_and_stops_on_signal(settings: Settings) -> None:
    run = service.run
    task = asyncio.create_task(run(settings.replace(notifier_sinks="log")))  # no receiver
    url = f"http://127.0.0.1:{settings.notifier_port}"
    async with aiohttp.ClientSession() as session:

        async def healthy() -> bool:
            if task.done():
                task.result()
            try:
                async with session.get(f"{url}/healthz") as response:
                    return response.status == 200
            except aiohttp.ClientConnectionError:
                return False

        await eventually(healthy, timeout=20)
        async with session.get(f"{url}/metrics") as response:
            assert "leadstream_notifier_deliveries_total" in await response.text()
    # /healthz answers only after run() installed its handlers, so the signal reaches run().
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(task, timeout=20)
