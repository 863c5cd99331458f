"""Graceful stop: requests in flight finish (bounded) before the server is torn down.

aiohttp's own shutdown cancels the current request of every connection, a handler still
reading its body included: a client that got its headers in before SIGTERM had its event
dropped with the connection. So `run` stops listening first, waits here until the requests
it already has are answered, and only then cleans the runner up and flushes Kafka.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class InFlight:
    """Counts requests between their headers and their answer."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.count += 1
        self._idle.clear()
        try:
            return await handler(request)
        finally:
            self.count -= 1
            if self.count == 0:
                self._idle.set()

    async def drained(self, timeout: float) -> int:
        """Wait until no request is in flight or `timeout` passed; how many are left."""
        deadline = time.monotonic() + timeout
        while self.count and time.monotonic() < deadline:
            try:
                await asyncio.wait_for(self._idle.wait(), deadline - time.monotonic())
            except TimeoutError:
                break
        return self.count
