"""A local sales webhook that verifies Standard Webhooks signatures (demo, e2e tests).

It answers as a real receiver should: 2xx only for a valid signature, 401 otherwise, and it
drops repeated `webhook-id`s, so it also shows whether deliveries are exactly-once in effect.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


class WebhookReceiver:
    def __init__(self, secret: str):
        self.webhook = Webhook(secret)
        self.deliveries: list[dict[str, Any]] = []
        self.arrivals: list[float] = []
        """time.monotonic() at which each of `deliveries` arrived (same index)."""
        self.seen_ids: dict[str, int] = {}
        self.verified = 0
        self.rejected = 0
        self._runner: web.AppRunner | None = None

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.seen_ids.values())

    async def handle(self, request: web.Request) -> web.Response:
        arrived = time.monotonic()
        body = await request.read()
        try:
            self.webhook.verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.rejected += 1
            return web.json_response({"error": "bad signature"}, status=401)
        self.verified += 1
        webhook_id = request.headers["webhook-id"]
        self.seen_ids[webhook_id] = self.seen_ids.get(webhook_id, 0) + 1
        if self.seen_ids[webhook_id] == 1:
            self.deliveries.append(orjson.loads(body))
            self.arrivals.append(arrived)
        return web.json_response({"ok": True})

    async def start(self, port: int, host: str = "127.0.0.1") -> None:
        app = web.Application()
        app.router.add_post("/hooks/{name}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
