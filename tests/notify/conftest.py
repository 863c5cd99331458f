"""Notifier test helpers: handoff records as the worker writes them, local HTTP receivers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web
from multidict import CIMultiDict

from stream.notify.sinks import Handoff

# Random key bytes, fixed (conftest may be imported twice): the notifier refuses typed ones.
SECRET = "whsec_E/rMrQHBPjiaOIXa4aWnTYwp9xJ8q1A6AU2FxydZ4wg="
SECRET_NEW = "whsec_yGzdZRxuMSRkGnRGJvAuiB27QQ/UXgo/bvpOJbgEkbA="


def handoff_data(lead_id: str = "lead-1", seq: int = 1, **overrides: Any) -> dict[str, Any]:
    """A `data` object of a stage_changed handoff (the worker's contract)."""
    data: dict[str, Any] = {
        "lead_id": lead_id,
        "seq": seq,
        "at": "2025-03-01T10:00:00Z",
        "from_stage": "mql",
        "to_stage": "sales_ready",
        "reason": "fast_lane",
        "fit": {"score": 82.5, "grade": "A"},
        "engagement": {"score": 61.0, "groups": {"decision": 30, "consideration": 31}},
        "threshold": 35,
        "top_contributors": [
            {"type": "web.demo_request", "value": 40},
            {"type": "web.pricing_view", "value": 12.5},
        ],
        "bant": {"budget": True, "authority": True, "need": None, "timeline": False},
        "route": {"queue": "ae", "priority": "P1", "sla": "1h", "task": None},
        "model_version": "default-b2b@3",
        "trigger_event_ids": ["evt-1"],
    }
    data.update(overrides)
    return data


def handoff_headers(
    ce_id: str, lead_id: str = "lead-1", priority: str = "P1", **extra: str
) -> list[tuple[str, bytes]]:
    values = {
        "ce_specversion": "1.0",
        "ce_id": ce_id,
        "ce_source": "leadstream/worker",
        "ce_type": "leadstream.lead.stage_changed.v1",
        "ce_subject": f"lead/{lead_id}",
        "ce_time": "2025-03-01T10:00:00Z",
        "content-type": "application/json",
        "ce_tostage": "sales_ready",
        "ce_fromstage": "mql",
        "ce_priority": priority,
        "ce_route": "ae",
        "ce_modelversion": "default-b2b@3",
        "ce_receivedat": "2025-03-01T10:00:00Z",
        **extra,
    }
    return [(k, v.encode()) for k, v in values.items()]


def make_handoff(
    ce_id: str = "ce-1", lead_id: str = "lead-1", priority: str = "P1", **data: Any
) -> Handoff:
    route = {"queue": "ae", "priority": priority, "sla": "1h", "task": None}
    value = orjson.dumps(handoff_data(lead_id, route=route, **data))
    return Handoff.from_record(
        topic="leads.handoff",
        partition=0,
        offset=7,
        key=lead_id.encode(),
        value=value,
        headers=handoff_headers(ce_id, lead_id, priority),
    )


@dataclass
class Seen:
    """One request a receiver got."""

    path: str
    headers: CIMultiDict[str]
    body: bytes
    at: float


Behaviour = Callable[[web.Request, int], Awaitable[web.StreamResponse]]


@dataclass
class Receiver:
    """A local HTTP server; `behaviour(request, n)` answers the n-th request (1-based)."""

    url: str
    seen: list[Seen] = field(default_factory=list)

    async def wait_for(self, count: int, timeout: float = 20.0) -> list[Seen]:
        deadline = time.monotonic() + timeout
        while len(self.seen) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver saw {len(self.seen)} requests, wanted {count}")
            await asyncio.sleep(0.02)
        return self.seen


async def ok(request: web.Request, n: int) -> web.StreamResponse:
    return web.Response(text="ok")


@pytest.fixture
async def receiver_factory() -> AsyncIterator[Callable[[Behaviour], Awaitable[Receiver]]]:
    runners: list[web.AppRunner] = []

    async def start(behaviour: Behaviour = ok) -> Receiver:
        receiver = Receiver(url="")

        async def handle(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            receiver.seen.append(
                Seen(request.path, CIMultiDict(request.headers), body, time.monotonic())
            )
            return await behaviour(request, len(receiver.seen))

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        receiver.url = f"http://127.0.0.1:{port}/hook"
        runners.append(runner)
        return receiver

    yield start
    for runner in runners:
        await runner.cleanup()
