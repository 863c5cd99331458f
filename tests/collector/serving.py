"""`collector.run` in the test process, until its public port answers `/healthz`."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from stream.collector.app import run
from stream.settings import Settings


async def start_collector(settings: Settings, port: int | None = None) -> asyncio.Task[None]:
    """The running `run(settings)` task, once `/healthz` on `port` (default: the public one)
    answers 200; fails if it does not within 20 s or the task ends first."""
    task = asyncio.create_task(run(settings))
    url = f"http://127.0.0.1:{port or settings.collector_port}/healthz"
    deadline = time.monotonic() + 20
    async with aiohttp.ClientSession() as session:
        while True:
            if task.done():
                task.result()
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return task
            except aiohttp.ClientConnectionError:
                pass
            assert time.monotonic() < deadline, "collector did not start"
            await asyncio.sleep(0.1)
