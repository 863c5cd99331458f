"""The dev Redis keeps what it answered across a SIGKILL, as production's must (issue 28, item
8: it ran without AOF, and a killed Redis forgot delivered markers, parked deliveries, webhook
replay keys and every lead snapshot)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from stream.collector.shared import ReplayGuard
from stream.dev.credentials import token_with_scope
from stream.dev.process import free_port
from stream.dev.redis import LocalRedis
from stream.notify.idempotency import Idempotency
from stream.notify.parked import Parked, ParkingLot
from stream.settings import Settings
from stream.store.api import add_lead_routes
from stream.store.redis import LeadStore
from tests.notify.conftest import make_handoff

pytestmark = pytest.mark.integration

Client = TestClient[web.Request, web.Application]


def snap(lead_id: str, stage: str, engagement: float) -> dict[str, Any]:
    return {"lead_id": lead_id, "stage": stage, "engagement": engagement, "fit": 50.0}


async def api_client(settings: Settings) -> Client:
    app = web.Application()
    add_lead_routes(app, settings)
    read = token_with_scope(settings, "read")
    return TestClient(TestServer(app), headers={"Authorization": f"Bearer {read}"})


async def aof_written(client: aioredis.Redis) -> None:
    """Until Redis has handed its append-only buffer to the OS (a SIGKILL cannot lose what is
    there); at once when AOF is off."""
    for _ in range(200):
        info = await client.info("persistence")
        if int(info.get("aof_buffer_length", 0)) == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the AOF buffer was never written: {info}")


def kill_hard(redis: LocalRedis) -> None:
    pid = redis.process.pid()
    assert pid is not None, "the test's redis-server is not running"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while not redis.process.exited_early():  # polls (and reaps) the child we started
        assert time.monotonic() < deadline, "redis-server survived SIGKILL"
        time.sleep(0.05)


async def test_dev_redis_keeps_what_it_answered_across_sigkill(
    base_settings: Settings, tmp_path: Path
) -> None:
    """A lead snapshot, a delivered marker, a parked delivery and a webhook replay key, all
    written to a dev Redis that is then killed with SIGKILL and started again: all still
    there, so nothing is delivered or accepted twice and the lead API still finds the lead."""
    settings = base_settings.replace(
        dev_dir=str(tmp_path / "dev"), redis_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    redis = LocalRedis(settings)
    redis.start()
    try:
        redis.wait_ready()
        client = aioredis.Redis.from_url(settings.redis_url)
        prefix = settings.redis_prefix
        store = LeadStore(client, prefix)
        idem = Idempotency(client, prefix)
        parking = ParkingLot(client, prefix)
        replay = ReplayGuard(client, prefix, window_seconds=300)
        record = make_handoff("ce-parked")
        await store.write([snap("u1", "mql", 42)])
        assert await idem.mark_delivered("webhook", "ce-delivered")
        parked = Parked.of(
            record, "webhook", "fast", step=0, attempts=3, due=time.time() + 3600,
            parked_at=time.time(), last_error="503",
        )  # fmt: skip
        await parking.park(parked)
        assert await replay.first_use("generic", "msg-1")
        await aof_written(client)
        await client.aclose()

        kill_hard(redis)
        redis = LocalRedis(settings)  # a new process on the same folder, as after a crash
        redis.start()
        redis.wait_ready()

        client = aioredis.Redis.from_url(settings.redis_url)
        try:
            kept = {
                "delivered marker": await Idempotency(client, prefix).is_delivered(
                    "webhook", "ce-delivered"
                ),
                "parked delivery": await ParkingLot(client, prefix).exists("webhook", "ce-parked"),
                "replay key": not await ReplayGuard(client, prefix, 300).first_use(
                    "generic", "msg-1"
                ),
                "lead snapshot": await LeadStore(client, prefix).get("u1") == snap("u1", "mql", 42),
            }
            assert kept == dict.fromkeys(kept, True)
        finally:
            await client.aclose()
        async with await api_client(settings) as api:
            resp = await api.get("/v1/leads/u1")
            assert resp.status == 200, await resp.text()
    finally:
        redis.stop()
