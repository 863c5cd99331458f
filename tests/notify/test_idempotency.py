"""Idempotency keys in the real Redis: delivered markers and in-flight claims."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stream.notify.idempotency import Idempotency
from stream.settings import Settings

pytestmark = pytest.mark.integration


async def test_second_instance_waits_for_the_first_and_skips(
    settings: Settings, redis_client: Any
) -> None:
    a = Idempotency(redis_client, settings.redis_prefix, claim_ttl_seconds=5)
    b = Idempotency(redis_client, settings.redis_prefix, claim_ttl_seconds=5)
    assert await a.acquire("webhook", "ce-1")
    waiting = asyncio.create_task(b.acquire("webhook", "ce-1", poll=0.02))
    await asyncio.sleep(0.1)
    assert not waiting.done()  # A holds the claim
    assert await a.mark_delivered("webhook", "ce-1")
    await a.release("webhook", "ce-1")
    assert await asyncio.wait_for(waiting, 2) is False  # delivered by A: B does nothing
    assert not await a.mark_delivered("webhook", "ce-1")  # NX: recorded once
    assert await b.is_delivered("webhook", "ce-1")
    assert not await b.is_delivered("slack", "ce-1")  # per sink


async def test_claim_of_a_dead_instance_expires(settings: Settings, redis_client: Any) -> None:
    dead = Idempotency(redis_client, settings.redis_prefix, claim_ttl_seconds=0.2)
    alive = Idempotency(redis_client, settings.redis_prefix, claim_ttl_seconds=5)
    assert await dead.claim("webhook", "ce-2")
    assert await asyncio.wait_for(alive.acquire("webhook", "ce-2", poll=0.05), 3) is True
    # The dead one cannot renew or release what is no longer its claim.
    assert not await dead.renew("webhook", "ce-2")
    await dead.release("webhook", "ce-2")
    key = alive.inflight_key("webhook", "ce-2")
    assert (await redis_client.get(key)).decode() == alive.owner


async def test_key_layout(settings: Settings) -> None:
    idem = Idempotency(None, settings.redis_prefix)
    assert idem.delivered_key("crm", "x") == f"{settings.redis_prefix}delivered:crm:x"
    assert idem.inflight_key("crm", "x") == f"{settings.redis_prefix}inflight:crm:x"
