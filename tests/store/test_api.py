"""The lead API when Redis cannot answer: 503 with a reason and Retry-After, never 500 or 404."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from stream.dev.credentials import token_with_scope
from stream.dev.process import free_port
from stream.settings import Settings
from stream.store.api import add_lead_routes

pytestmark = pytest.mark.integration

READ_ROUTES = (
    "/v1/leads/u1",
    "/v1/leads/u1/ledger",
    "/v1/leads/u1/deliveries",
    "/v1/leads?stage=mql",
    "/v1/accounts/acme",
)


async def test_redis_down_is_503_with_retry_after(settings: Settings) -> None:
    nobody = settings.replace(redis_url=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens
    app = web.Application()
    add_lead_routes(app, nobody)
    read = token_with_scope(settings, "read")
    async with TestClient(TestServer(app), headers={"Authorization": f"Bearer {read}"}) as client:
        for path in READ_ROUTES:
            resp = await client.get(path)
            assert resp.status == 503, path
            assert resp.headers["Retry-After"].isdigit(), path
            body = await resp.json()
            assert body["reason"] == "redis_unavailable", path
            assert "Redis" in body["error"], path
