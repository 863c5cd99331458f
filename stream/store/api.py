"""The lead API: `GET /v1/leads/{id}`, its ledger and deliveries, and leads by stage."""

from __future__ import annotations

from aiohttp import web

from stream.scoring.events import STAGES
from stream.settings import Settings
from stream.store.redis import LeadStore

STORE_KEY = web.AppKey("lead_store", LeadStore)


def add_lead_routes(app: web.Application, settings: Settings) -> None:
    """Mount the lead API on an aiohttp app; the Redis client lives as long as the app."""

    async def open_store(app: web.Application) -> None:
        app[STORE_KEY] = LeadStore.from_url(settings.redis_url, settings.redis_prefix)

    async def close_store(app: web.Application) -> None:
        await app[STORE_KEY].close()

    app.on_startup.append(open_store)
    app.on_cleanup.append(close_store)
    app.router.add_get("/v1/leads", list_leads)
    app.router.add_get("/v1/leads/{lead_id}", get_lead)
    app.router.add_get("/v1/leads/{lead_id}/ledger", get_ledger)
    app.router.add_get("/v1/leads/{lead_id}/deliveries", get_deliveries)
    app.router.add_get("/v1/accounts/{account_id}", get_account)


def _int_param(request: web.Request, name: str, default: int, most: int) -> int:
    raw = request.query.get(name, str(default))
    if not raw.isdigit() or not 0 <= int(raw) <= most:
        raise web.HTTPBadRequest(
            text=f'{{"error": "{name} must be a whole number from 0 to {most}"}}',
            content_type="application/json",
        )
    return int(raw)


async def get_lead(request: web.Request) -> web.Response:
    lead_id = request.match_info["lead_id"]
    snap = await request.app[STORE_KEY].get(lead_id)
    if snap is None:
        return web.json_response({"error": "no such lead", "lead_id": lead_id}, status=404)
    return web.json_response(snap)


async def get_ledger(request: web.Request) -> web.Response:
    lead_id = request.match_info["lead_id"]
    offset = _int_param(request, "offset", 0, 10_000)
    limit = _int_param(request, "limit", 50, 500)
    entries = await request.app[STORE_KEY].ledger(lead_id, offset, limit)
    return web.json_response(
        {"lead_id": lead_id, "offset": offset, "limit": limit, "entries": entries}
    )


async def get_deliveries(request: web.Request) -> web.Response:
    lead_id = request.match_info["lead_id"]
    entries = await request.app[STORE_KEY].deliveries(
        lead_id, _int_param(request, "limit", 50, 500)
    )
    return web.json_response({"lead_id": lead_id, "deliveries": entries})


async def list_leads(request: web.Request) -> web.Response:
    stage = request.query.get("stage", "mql")
    if stage not in STAGES:
        return web.json_response(
            {"error": f"unknown stage {stage!r}", "stages": list(STAGES)}, status=400
        )
    leads = await request.app[STORE_KEY].by_stage(stage, _int_param(request, "limit", 50, 1000))
    return web.json_response({"stage": stage, "leads": leads})


async def get_account(request: web.Request) -> web.Response:
    account_id = request.match_info["account_id"]
    snap = await request.app[STORE_KEY].account(account_id)
    if snap is None:
        return web.json_response({"error": "no such account", "account_id": account_id}, status=404)
    return web.json_response(snap)
