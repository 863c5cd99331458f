"""One health contract for every process: `/healthz` says the process runs, `/readyz` that it
can do its work now, both with the same JSON body, so one probe configuration and one
dashboard query fit the collector, the worker and the notifier alike."""

from __future__ import annotations

from aiohttp import web


def alive(**checks: bool) -> web.Response:
    """`/healthz`: 200 `{"status": "ok", "checks": {...}}`, 503 `"failing"` when a check fails
    (a process whose own tasks died should be restarted)."""
    ok = all(checks.values())
    body = {"status": "ok" if ok else "failing", "checks": checks}
    return web.json_response(body, status=200 if ok else 503)


def readiness(**checks: bool) -> web.Response:
    """`/readyz`: 200 `{"status": "ready", "checks": {...}}` when every check holds, else 503
    `"not ready"` with the checks that say why."""
    ok = all(checks.values())
    body = {"status": "ready" if ok else "not ready", "checks": checks}
    return web.json_response(body, status=200 if ok else 503)
