"""The worker's HTTP pages: /metrics, /healthz (the loop runs) and /readyz (partitions
assigned, their stores restored)."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stream import health


class Status(Protocol):
    """What the pages read of the worker."""

    @property
    def running(self) -> bool: ...

    @property
    def assigned(self) -> bool: ...

    @property
    def restored(self) -> bool: ...


def web_app(worker: Status) -> web.Application:
    async def metrics_page(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"content-type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return health.alive(running=worker.running)

    async def readyz(_: web.Request) -> web.Response:
        return health.readiness(
            running=worker.running, assigned=worker.assigned, recovered=worker.restored
        )

    app = web.Application()
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
