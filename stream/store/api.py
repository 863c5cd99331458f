"""The lead API: `GET /v1/leads/{id}`, its ledger and deliveries, leads by stage, re-drives.

Served only on the collector's internal listener, never on the public ingest port. Every route
needs `Authorization: Bearer <token>` with a token of LEADSTREAM_LEAD_API_TOKENS: `read` for
the GET routes, `admin` (which includes read) for the re-drive.

Answers that Redis cannot give are 503 with a JSON `reason` and Retry-After, never 404 or 500:
`redis_unavailable` (Redis does not answer) and, with LEADSTREAM_SNAPSHOT_MARKS, `snapshots_lost`
(Redis lacks a worker's mark, so "not found" may mean "lost": stream/store/marks.py).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web
from redis.exceptions import RedisError

from stream.scoring.events import STAGES
from stream.settings import Settings
from stream.store.marks import SnapshotMarks
from stream.store.redis import LeadStore

STORE_KEY = web.AppKey("lead_store", LeadStore)
SETTINGS_KEY = web.AppKey("lead_api_settings", Settings)
SCOPES = {"read": frozenset({"read", "admin"}), "admin": frozenset({"admin"})}
RETRY_AFTER_SECONDS = 5  # Redis restarting, failing over, or rebuilding: a client waits this
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class TokenScopes:
    """Bearer tokens and their scopes, compared in constant time.

    Tokens are compared as SHA-256 digests (equal length) against every configured token, with
    no early exit, so neither a token's length nor its position leaks through timing.
    """

    def __init__(self, tokens: dict[str, str]) -> None:
        self._digests = [(hashlib.sha256(t.encode()).digest(), s) for t, s in tokens.items()]

    def scope(self, authorization: str) -> str | None:
        """The scope of the header's bearer token, or None when it is missing or unknown."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        given = hashlib.sha256(token.strip().encode()).digest()
        found: str | None = None
        for digest, scope in self._digests:
            if hmac.compare_digest(digest, given):
                found = scope
        return found


TOKENS_KEY = web.AppKey("lead_api_tokens", TokenScopes)


def require(scope: str, handler: Handler) -> Handler:
    """`handler` behind a bearer token with `scope`: 401 without a valid token, 403 without
    the scope."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        has = request.app[TOKENS_KEY].scope(request.headers.get("Authorization", ""))
        if has is None:
            return web.json_response(
                {
                    "error": "a bearer token is required: Authorization: Bearer <token> with a "
                    "token of LEADSTREAM_LEAD_API_TOKENS"
                },
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="leadstream"'},
            )
        if has not in SCOPES[scope]:
            return web.json_response(
                {"error": f"this token has scope {has!r}; this route needs {scope!r}"},
                status=403,
            )
        try:
            return await handler(request)
        except (RedisError, OSError) as exc:
            return unavailable(
                f"Redis does not answer ({type(exc).__name__}); the lead API serves from "
                "Redis: try again shortly, and check LEADSTREAM_REDIS_URL and the Redis server",
                reason="redis_unavailable",
            )

    return guarded


def unavailable(error: str, reason: str, **extra: object) -> web.Response:
    """503 with a JSON reason and Retry-After: the data is there but cannot be read now, which a
    client must not take for "no such lead" (404) nor for a bug (500)."""
    return web.json_response(
        {"error": error, "reason": reason, **extra},
        status=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def add_lead_routes(app: web.Application, settings: Settings) -> None:
    """Mount the lead API on an aiohttp app; the Redis client lives as long as the app."""

    async def open_store(app: web.Application) -> None:
        app[STORE_KEY] = LeadStore.from_url(settings.redis_url, settings.redis_prefix)

    async def close_store(app: web.Application) -> None:
        await app[STORE_KEY].close()

    app[TOKENS_KEY] = TokenScopes(settings.parsed_lead_api_tokens())
    app[SETTINGS_KEY] = settings
    app.on_startup.append(open_store)
    app.on_cleanup.append(close_store)
    app.router.add_get("/v1/leads", require("read", list_leads))
    app.router.add_get("/v1/leads/{lead_id}", require("read", get_lead))
    app.router.add_get("/v1/leads/{lead_id}/ledger", require("read", get_ledger))
    app.router.add_get("/v1/leads/{lead_id}/deliveries", require("read", get_deliveries))
    app.router.add_get("/v1/accounts/{account_id}", require("read", get_account))
    app.router.add_post("/v1/admin/deadletters/redrive", require("admin", redrive_deadletters))


def _int_param(request: web.Request, name: str, default: int, most: int) -> int:
    raw = request.query.get(name, str(default))
    if not raw.isdigit() or not 0 <= int(raw) <= most:
        raise web.HTTPBadRequest(
            text=f'{{"error": "{name} must be a whole number from 0 to {most}"}}',
            content_type="application/json",
        )
    return int(raw)


async def lost(request: web.Request) -> web.Response | None:
    """503 when "nothing found" may mean "lost": Redis lacks a partition's snapshot mark.

    Only with LEADSTREAM_SNAPSHOT_MARKS (the worker must write the marks, or every unknown lead
    would be 503 for ever). One MGET, and only on the paths that found nothing.
    """
    settings = request.app[SETTINGS_KEY]
    if not settings.snapshot_marks:
        return None
    missing = await SnapshotMarks(request.app[STORE_KEY], settings.partitions).missing()
    if not missing:
        return None
    return unavailable(
        "Redis does not hold every lead snapshot: the worker's mark of partition(s) "
        f"{', '.join(map(str, missing))} is missing (Redis lost its data, or no worker has "
        "written to it yet). The worker writes the snapshots back and marks each partition; "
        "try again shortly",
        reason="snapshots_lost",
        partitions=missing,
    )


async def get_lead(request: web.Request) -> web.Response:
    lead_id = request.match_info["lead_id"]
    snap = await request.app[STORE_KEY].get(lead_id)
    if snap is None:
        return await lost(request) or web.json_response(
            {"error": "no such lead", "lead_id": lead_id}, status=404
        )
    return web.json_response(snap)


async def get_ledger(request: web.Request) -> web.Response:
    lead_id = request.match_info["lead_id"]
    offset = _int_param(request, "offset", 0, 10_000)
    limit = _int_param(request, "limit", 50, 500)
    entries = await request.app[STORE_KEY].ledger(lead_id, offset, limit)
    if not entries and (answer := await lost(request)) is not None:
        return answer
    return web.json_response(
        {"lead_id": lead_id, "offset": offset, "limit": limit, "entries": entries}
    )


async def get_deliveries(request: web.Request) -> web.Response:
    lead_id = request.match_info["lead_id"]
    entries = await request.app[STORE_KEY].deliveries(
        lead_id, _int_param(request, "limit", 50, 500)
    )
    if not entries and (answer := await lost(request)) is not None:
        return answer
    return web.json_response({"lead_id": lead_id, "deliveries": entries})


async def list_leads(request: web.Request) -> web.Response:
    stage = request.query.get("stage", "mql")
    if stage not in STAGES:
        return web.json_response(
            {"error": f"unknown stage {stage!r}", "stages": list(STAGES)}, status=400
        )
    leads = await request.app[STORE_KEY].by_stage(stage, _int_param(request, "limit", 50, 1000))
    if (answer := await lost(request)) is not None:  # a list may lack leads however long
        return answer
    return web.json_response({"stage": stage, "leads": leads})


async def get_account(request: web.Request) -> web.Response:
    account_id = request.match_info["account_id"]
    snap = await request.app[STORE_KEY].account(account_id)
    if snap is None:
        return await lost(request) or web.json_response(
            {"error": "no such account", "account_id": account_id}, status=404
        )
    return web.json_response(snap)


async def redrive_deadletters(request: web.Request) -> web.Response:
    """`leadstream deadletters redrive` over HTTP: ?reason=&stage=&handoff=true&dry_run=true."""
    from stream.deadletters.redrive import redrive

    query = request.query
    counts = await redrive(
        request.app[SETTINGS_KEY],
        reason=query.get("reason") or None,
        stage=query.get("stage") or None,
        dry_run=query.get("dry_run", "").lower() in {"1", "true", "yes"},
        handoff=query.get("handoff", "").lower() in {"1", "true", "yes"},
    )
    return web.json_response(counts)
