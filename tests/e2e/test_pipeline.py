"""Segment-format events over HTTP → Kafka → worker → handoff → notifier → signed webhook."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from stream.demo import Processes
from stream.dev.credentials import token_with_scope
from stream.dev.receiver import WebhookReceiver
from stream.settings import Settings
from tests.e2e.conftest import eventually

pytestmark = pytest.mark.e2e


def segment_batch(user_id: str, anonymous_id: str) -> dict[str, object]:
    return {
        "batch": [
            {
                "type": "page",
                "messageId": f"{user_id}-1",
                "anonymousId": anonymous_id,
                "timestamp": "2026-05-04T09:00:00.000Z",
                "name": "Pricing",
                "properties": {"path": "/pricing", "url": "https://example.com/pricing"},
                "context": {"page": {"path": "/pricing", "url": "https://example.com/pricing"}},
            },
            {
                "type": "identify",
                "messageId": f"{user_id}-2",
                "anonymousId": anonymous_id,
                "userId": user_id,
                "timestamp": "2026-05-04T09:01:00.000Z",
                "traits": {
                    "email": "cto@bigcorp.example",
                    "seniority": "c_level",
                    "buying_role": "decision_maker",
                    "employees": 2400,
                    "industry": "software",
                    "country": "DE",
                    "email_type": "business",
                },
            },
            {
                "type": "track",
                "messageId": f"{user_id}-3",
                "anonymousId": anonymous_id,
                "userId": user_id,
                "event": "Demo Requested",
                "timestamp": "2026-05-04T09:02:00.000Z",
                "properties": {},
            },
        ],
        "sentAt": "2026-05-04T09:02:00.000Z",
    }


def browser_key(settings: Settings) -> str:
    return next(k for k, (_, kind) in settings.parsed_write_keys().items() if kind == "browser")


async def test_hand_raiser_reaches_sales_through_a_signed_webhook(
    pipeline: tuple[Processes, WebhookReceiver, Settings],
) -> None:
    _, hook, settings = pipeline
    base = f"http://{settings.collector_host}:{settings.collector_port}"
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{base}/v1/batch",
            json=segment_batch("u-e2e", "anon-e2e"),
            headers={"Authorization": aiohttp.encode_basic_auth(browser_key(settings))},
        ) as resp:
            assert resp.status == 200, await resp.text()
            assert await resp.json() == {"success": True}

        def handed_off() -> bool:
            return any(
                d["lead_id"] == "u-e2e" and d["to_stage"] == "sales_ready" for d in hook.deliveries
            )

        await eventually(handed_off, "the sales_ready handoff at the webhook")
        delivery = next(d for d in hook.deliveries if d["to_stage"] == "sales_ready")
        assert delivery["reason"] == "fast_lane"
        assert delivery["route"] == {
            "queue": "ae",
            "priority": "P1",
            "sla": "PT1H",
            "task": delivery["route"]["task"],
        }
        assert hook.rejected == 0 and hook.verified >= 1

        async def lead_stage() -> str | None:
            # the lead API: internal listener, bearer token with the read scope
            internal = (
                f"http://{settings.collector_internal_host}:{settings.collector_internal_port}"
            )
            token = {"Authorization": f"Bearer {token_with_scope(settings, 'read')}"}
            async with http.get(f"{internal}/v1/leads/u-e2e", headers=token) as resp:
                return (await resp.json()).get("stage") if resp.status == 200 else None

        stage = None
        for _ in range(50):
            stage = await lead_stage()
            if stage == "sales_ready":
                break
            await asyncio.sleep(0.2)
        assert stage == "sales_ready"
