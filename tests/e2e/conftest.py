"""The three processes as real subprocesses, and a signature-checking sales webhook."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from stream.demo import Processes, wait_http
from stream.dev.process import free_port
from stream.receiver import WebhookReceiver
from stream.settings import Settings


@pytest.fixture
async def receiver(settings: Settings) -> AsyncIterator[tuple[WebhookReceiver, Settings]]:
    hook = WebhookReceiver(settings.webhook_secret.split()[0])
    port = free_port()
    await hook.start(port)
    yield hook, settings.replace(webhook_url=f"http://127.0.0.1:{port}/hooks/sales")
    await hook.stop()


@pytest.fixture
async def pipeline(
    receiver: tuple[WebhookReceiver, Settings], tmp_path: Path
) -> AsyncIterator[tuple[Processes, WebhookReceiver, Settings]]:
    hook, settings = receiver
    procs = Processes(settings, tmp_path / "logs")
    try:
        for name in ("collector", "worker", "notifier"):
            procs.start(name)
        host = settings.collector_host
        await wait_http(f"http://{host}:{settings.collector_port}/readyz", procs)
        await wait_http(f"http://{host}:{settings.worker_port}/metrics", procs, timeout=90)
        await wait_http(f"http://{host}:{settings.notifier_port}/healthz", procs)
        yield procs, hook, settings
    finally:
        procs.stop()


async def eventually(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.2)
