"""LeadStore and the lead API against the real Redis of the test session."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from stream.dev.credentials import token_with_scope
from stream.settings import Settings
from stream.store.api import TokenScopes, add_lead_routes
from stream.store.marks import SnapshotMarks
from stream.store.redis import FLUSH_CHUNK, LeadStore

pytestmark = pytest.mark.integration


def snap(lead_id: str, stage: str, engagement: float) -> dict[str, object]:
    return {"lead_id": lead_id, "stage": stage, "engagement": engagement, "fit": 50.0}


@pytest.fixture
def store(settings: Settings, redis_client: aioredis.Redis) -> LeadStore:
    return LeadStore(redis_client, settings.redis_prefix)


async def test_latest_snapshot_wins_and_stage_lists_move(store: LeadStore) -> None:
    await store.write([snap("u1", "mql", 40), snap("u2", "mql", 55), snap("u3", "lead", 5)])
    await store.write([snap("u1", "sales_ready", 41)])
    assert (await store.get("u1"))["stage"] == "sales_ready"  # type: ignore[index]
    assert [s["lead_id"] for s in await store.by_stage("mql")] == ["u2"]  # u1 moved on
    assert [s["lead_id"] for s in await store.by_stage("sales_ready")] == ["u1"]
    assert await store.get("nobody") is None


async def test_only_moved_leads_leave_other_rankings_and_stale_entries_heal(
    store: LeadStore, redis_client: aioredis.Redis
) -> None:
    await store.write([snap("u1", "mql", 40), snap("u2", "mql", 30)])
    await store.write([snap("u2", "sales_ready", 31)], moved={"u2"})
    assert await redis_client.zscore(store.key("stage", "mql"), "u2") is None
    # A stage change whose write a crash cut off: the ranking keeps u1 under mql...
    await store.write([snap("u1", "sql", 40)], moved=set())
    assert await redis_client.zscore(store.key("stage", "mql"), "u1") == 40
    # ...until a read meets the entry, returns only true MQLs, and drops it.
    assert await store.by_stage("mql") == []
    assert await redis_client.zscore(store.key("stage", "mql"), "u1") is None
    assert [s["lead_id"] for s in await store.by_stage("sql")] == ["u1"]


async def test_ledger_entries_may_come_serialised(store: LeadStore) -> None:
    await store.write([], {"u2": [b'{"n":1}', {"n": 2}]})
    assert [e["n"] for e in await store.ledger("u2")] == [2, 1]


async def test_ledger_is_newest_first_paged_and_capped(store: LeadStore) -> None:
    await store.write([], {"u1": [{"n": i} for i in range(3)]})
    await store.write([], {"u1": [{"n": 3}]})
    assert [e["n"] for e in await store.ledger("u1", 0, 2)] == [3, 2]
    assert [e["n"] for e in await store.ledger("u1", 2, 10)] == [1, 0]


async def test_absorb_moves_a_visitors_ledger_and_drops_its_snapshot(store: LeadStore) -> None:
    await store.write([snap("anon:c1", "anonymous", 3)], {"anon:c1": [{"n": "old"}]})
    await store.write([snap("u7", "lead", 4)], {"u7": [{"n": "new"}]})
    await store.absorb("anon:c1", "u7")
    await store.absorb("anon:c1", "u7")  # a repeat moves nothing twice
    assert await store.get("anon:c1") is None
    assert await store.by_stage("anonymous") == []
    assert [e["n"] for e in await store.ledger("u7")] == ["new", "old"]


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application()
    add_lead_routes(app, settings)
    read = token_with_scope(settings, "read")
    async with TestClient(TestServer(app), headers={"Authorization": f"Bearer {read}"}) as client:
        yield client


async def test_lead_api(
    api: TestClient[web.Request, web.Application], store: LeadStore, settings: Settings
) -> None:
    await store.write([snap("u9", "mql", 50), snap("u8", "mql", 60)], {"u9": [{"n": 1}]})
    resp = await api.get("/v1/leads/u9")
    assert resp.status == 200 and (await resp.json())["stage"] == "mql"
    for partition in range(settings.partitions):  # as a worker does: Redis holds all its leads
        await SnapshotMarks(store, settings.partitions).mark(partition, 2)
    resp = await api.get("/v1/leads/missing")
    assert resp.status == 404 and (await resp.json())["lead_id"] == "missing"
    resp = await api.get("/v1/leads/u9/ledger?limit=1")
    assert (await resp.json())["entries"] == [{"n": 1}]
    resp = await api.get("/v1/leads?stage=mql&limit=5")
    assert [lead["lead_id"] for lead in (await resp.json())["leads"]] == ["u8", "u9"]
    resp = await api.get("/v1/leads?stage=hot")
    assert resp.status == 400 and "stages" in await resp.json()
    resp = await api.get("/v1/leads/u9/ledger?limit=-3")
    assert resp.status == 400


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer wrong-token-of-the-right-length-000", "Basic dXNlcjpwYXNz"],
)
async def test_lead_api_without_a_valid_token_is_401(
    settings: Settings, store: LeadStore, authorization: str | None
) -> None:
    await store.write([snap("u9", "mql", 50)], {})
    app = web.Application()
    add_lead_routes(app, settings)
    headers = {"Authorization": authorization} if authorization else {}
    async with TestClient(TestServer(app)) as client:
        for path in ("/v1/leads/u9", "/v1/leads?stage=mql", "/v1/leads/u9/ledger"):
            resp = await client.get(path, headers=headers)
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
            assert "u9" not in await resp.text()


async def test_read_token_cannot_redrive(settings: Settings) -> None:
    app = web.Application()
    add_lead_routes(app, settings)
    read = token_with_scope(settings, "read")
    async with TestClient(TestServer(app)) as client:
        resp = await client.post(
            "/v1/admin/deadletters/redrive", headers={"Authorization": f"Bearer {read}"}
        )
        assert resp.status == 403


def test_token_scopes_compare_every_token() -> None:
    scopes = TokenScopes({"a" * 30: "read", "b" * 30: "admin"})
    assert scopes.scope("Bearer " + "a" * 30) == "read"
    assert scopes.scope("bearer " + "b" * 30) == "admin"
    assert scopes.scope("Bearer " + "a" * 29) is None
    assert scopes.scope("Bearer " + "a" * 30 + "x") is None
    assert scopes.scope("") is None


async def test_a_large_flush_writes_every_lead_ledger_and_account_and_reads_after(
    store: LeadStore, redis_client: aioredis.Redis
) -> None:
    """More leads than one script call takes, a ledger longer than one LPUSH, accounts, and
    keys read in the same round trip: all as separate commands would have done."""
    leads = [snap(f"u{n}", "mql" if n % 2 else "lead", n) for n in range(FLUSH_CHUNK * 2 + 7)]
    leads.append({"lead_id": "odd", "stage": "no-such-stage", "engagement": None})
    entries = [{"n": n} for n in range(2_500)]
    await redis_client.set(store.key("snapshots", "0"), b"marked")
    read = [store.key("snapshots", "0"), store.key("snapshots", "1")]
    found = await store.flush(
        leads, {"u3": entries}, set(), [{"account_id": "acme", "mqa": True}], read=read
    )
    assert found == [b"marked", None]
    assert (await store.get("u1006")) == leads[1006]
    assert (await store.get("odd")) == leads[-1]
    assert await redis_client.zcard(store.key("stage", "mql")) == (FLUSH_CHUNK * 2 + 7) // 2
    assert await redis_client.zscore(store.key("stage", "lead"), "u1000") == 1000
    ledger = await store.ledger("u3", 0, 500)
    assert len(ledger) == 500 and ledger[0] == {"n": 2_499} and ledger[-1] == {"n": 2_000}
    assert await redis_client.llen(store.key("ledger", "u3")) == 500
    assert await store.account("acme") == {"account_id": "acme", "mqa": True}
    assert await store.flush([], read=read) == [b"marked", None]  # a read alone
