"""A receiver outage longer than the quick retries, across a notifier SIGKILL: the real notifier
process, the real broker and Redis, and a signature-checking receiver that counts repeats.

The schedule is seconds instead of hours (LEADSTREAM_DELIVERY_SCHEDULE, the variable an operator
sets); everything else is what runs in production.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from stream.demo import Processes, wait_http
from stream.dev.process import free_port
from stream.dev.receiver import WebhookReceiver
from stream.lag import group_lag
from stream.notify import GROUP_ID
from stream.settings import Settings
from stream.topics import Topics
from tests.kafka_helpers import produce_records, read_all

from .conftest import handoff_data, handoff_headers

pytestmark = pytest.mark.integration
HANDOFFS = 40


class FlakyReceiver(WebhookReceiver):
    """Answers 503 while `down`, then verifies and dedupes like a real receiver."""

    def __init__(self, secret: str) -> None:
        super().__init__(secret)
        self.down = True
        self.unavailable = 0

    async def handle(self, request: web.Request) -> web.Response:
        if self.down:
            await request.read()
            self.unavailable += 1
            return web.json_response({"error": "maintenance"}, status=503)
        return await super().handle(request)


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not in {timeout:.0f}s: {what}")
        await asyncio.sleep(0.2)


async def parked(redis: Any, settings: Settings) -> int:
    keys = [key async for key in redis.scan_iter(f"{settings.redis_prefix}schedule:*")]
    return sum([await redis.zcard(key) for key in keys])


async def test_outage_across_a_sigkill_delivers_every_handoff_exactly_once(
    settings: Settings, redis_client: Any, tmp_path: Path
) -> None:
    port = free_port()
    settings = settings.replace(
        webhook_url=f"http://127.0.0.1:{port}/hooks/sales",
        delivery_attempts=2,
        delivery_backoff_seconds=0.05,
        delivery_timeout_seconds=1.0,
        # Far longer in all than the outage below: nothing may be dead-lettered.
        delivery_schedule="1s,2s,3s,3s,5s,5s,10s,10s,20s,30s,60s",
        delivery_schedule_poll_seconds=0.2,
        notifier_claim_ttl_seconds=2.0,
        notifier_commit_interval_seconds=0.2,
        fast_lane_concurrency=2,
        routine_lane_concurrency=2,
    )
    topic = Topics.from_settings(settings).handoff
    records = []
    for i in range(HANDOFFS):
        lead, priority = f"outage-{i:03d}", "P1" if i % 5 == 0 else "P2"
        route = {"queue": "ae", "priority": priority, "sla": "1h", "task": None}
        value = orjson.dumps(handoff_data(lead, route=route))
        records.append((lead.encode(), value, handoff_headers(f"ce-{lead}", lead, priority)))
    await produce_records(settings.kafka_bootstrap, topic, records)
    expected = {f"ce-outage-{i:03d}" for i in range(HANDOFFS)}
    group = f"{settings.topic_prefix}{GROUP_ID}"
    hook = FlakyReceiver(settings.webhook_secret.split()[0])
    procs = Processes(settings, tmp_path / "logs")
    try:
        # 1. The receiver refuses connections: the quick attempts fail and every handoff is
        #    parked; their offsets are committed although none is delivered.
        procs.start("notifier")
        health = f"http://{settings.metrics_host}:{settings.notifier_port}/healthz"
        await wait_http(health, procs, 60)

        async def all_parked() -> bool:
            return await parked(redis_client, settings) == HANDOFFS

        async def all_committed() -> bool:
            lag = await group_lag(settings.kafka_bootstrap, group, [topic])
            return lag[topic] == 0

        await eventually(all_parked, "every handoff parked", 90)
        await eventually(all_committed, "offsets committed while parked", 30)
        # 2. SIGKILL while deliveries are parked (and some leased by the dying process).
        procs.children["notifier"].send_signal(signal.SIGKILL)
        procs.children["notifier"].wait()
        # 3. The receiver comes back answering 503; a new notifier picks the schedule up.
        await hook.start(port)
        procs.start("notifier")
        await wait_http(health, procs, 60)

        async def refused_some() -> bool:
            return hook.unavailable >= 5

        await eventually(refused_some, "scheduled attempts answered 503", 60)
        assert hook.seen_ids == {}
        # 4. It recovers: every handoff arrives, without a re-drive.
        hook.down = False

        async def all_delivered() -> bool:
            return set(hook.seen_ids) >= expected and await parked(redis_client, settings) == 0

        await eventually(all_delivered, "every handoff delivered", 180)
        await asyncio.sleep(2.0)  # room for a repeat to show up, if there were one
    finally:
        procs.stop()
        await hook.stop()
    assert set(hook.seen_ids) == expected
    assert hook.duplicates == 0, {i: n for i, n in hook.seen_ids.items() if n > 1}
    assert hook.rejected == 0  # every delivery signed correctly
    assert (
        await read_all(settings.kafka_bootstrap, Topics.from_settings(settings).handoff_deadletter)
        == []
    )
    for ce_id in expected:
        assert await redis_client.exists(f"{settings.redis_prefix}delivered:webhook:{ce_id}")
    assert [k async for k in redis_client.scan_iter(f"{settings.redis_prefix}parked:*")] == []
