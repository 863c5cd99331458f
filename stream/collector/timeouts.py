"""Header deadline for both of the collector's listeners (public ingest and internal lead API
and /metrics): a connection that does not send a request's headers in time is closed
(slowloris), since aiohttp has no header timeout of its own.

The deadline is armed when a connection opens and again after every response; the first
middleware disarms it when a request's headers have arrived (aiohttp calls the handler only
then). Body reads have their own timeout (`limits.read_body`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from stream.metrics import COLLECTOR_REFUSALS

Handler = Callable[[web.Request], Any]


class HeaderDeadline:
    """Per connection: a timer that closes the transport unless a request starts first."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._timers: dict[int, asyncio.TimerHandle] = {}

    def protocol_factory(self, server: web.Server) -> Callable[[], RequestHandler]:
        """Wrap aiohttp's protocol factory so each new connection gets its deadline."""

        def make() -> RequestHandler:
            handler = server()
            self.arm(handler)
            return handler

        return make

    def arm(self, handler: RequestHandler) -> None:
        self.disarm(handler)
        loop = asyncio.get_running_loop()
        self._timers[id(handler)] = loop.call_later(self.seconds, self._expire, handler)

    def disarm(self, handler: Any) -> None:
        timer = self._timers.pop(id(handler), None)
        if timer is not None:
            timer.cancel()

    def _expire(self, handler: RequestHandler) -> None:
        self._timers.pop(id(handler), None)
        transport = handler.transport
        if transport is not None and not transport.is_closing():
            COLLECTOR_REFUSALS.labels("request_timeout").inc()
            transport.close()

    @property
    def armed(self) -> int:
        """Connections currently waiting for headers (tests)."""
        return len(self._timers)

    def middleware(self) -> Any:
        @web.middleware
        async def deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
            protocol = request.protocol
            self.disarm(protocol)
            try:
                response: web.StreamResponse = await handler(request)
                return response
            finally:
                if protocol is not None and protocol.transport is not None:
                    self.arm(protocol)  # the next request on this keep-alive connection

        return deadline


class GuardedSite(web.TCPSite):
    """TCPSite whose connections are created through `HeaderDeadline.protocol_factory`.

    `start` repeats aiohttp 3.x TCPSite.start with the wrapped factory; it fails loudly if the
    attributes it relies on are gone in another aiohttp version.
    """

    def __init__(self, runner: web.BaseRunner, host: str, port: int, deadline: HeaderDeadline):
        super().__init__(runner, host, port)
        self._deadline = deadline
        for name in ("_runner", "_host", "_port", "_backlog", "_reuse_address", "_reuse_port"):
            if not hasattr(self, name):
                raise RuntimeError(f"aiohttp's TCPSite has no {name}: GuardedSite needs updating")

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._deadline.protocol_factory(server),
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        if self._server.sockets:
            self._bound_port = self._server.sockets[0].getsockname()[1]
