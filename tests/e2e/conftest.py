"""The three processes as real subprocesses, and a signature-checking sales webhook."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from stream.demo import Processes, wait_http
from stream.dev.process import free_port
from stream.dev.receiver import WebhookReceiver
from stream.settings import Settings

Pipeline = tuple[Processes, WebhookReceiver, Settings]


@pytest.fixture
async def receiver(settings: Settings) -> AsyncIterator[tuple[WebhookReceiver, Settings]]:
    hook = WebhookReceiver(settings.webhook_secret.split()[0])
    port = free_port()
    await hook.start(port)
    yield hook, settings.replace(webhook_url=f"http://127.0.0.1:{port}/hooks/sales")
    await hook.stop()


@asynccontextmanager
async def running(
    hook: WebhookReceiver, settings: Settings, log_dir: Path
) -> AsyncIterator[Pipeline]:
    """Collector, worker and notifier started with `settings`, ready to serve, then stopped."""
    procs = Processes(settings, log_dir)
    try:
        for name in ("collector", "worker", "notifier"):
            procs.start(name)
        host = settings.collector_host
        # Ready means able to work: the worker has its partitions and recovered tables.
        await wait_http(f"http://{host}:{settings.collector_port}/readyz", procs)
        await wait_http(f"http://{host}:{settings.worker_port}/readyz", procs, timeout=90)
        await wait_http(f"http://{host}:{settings.notifier_port}/readyz", procs)
        yield procs, hook, settings
    finally:
        procs.stop()


@pytest.fixture
async def pipeline(
    receiver: tuple[WebhookReceiver, Settings], tmp_path: Path
) -> AsyncIterator[Pipeline]:
    hook, settings = receiver
    async with running(hook, settings, tmp_path / "logs") as started:
        yield started


@pytest.fixture
def sendgrid_key() -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA P-256 key standing in for SendGrid's signing key."""
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
async def sendgrid_pipeline(
    receiver: tuple[WebhookReceiver, Settings],
    sendgrid_key: ec.EllipticCurvePrivateKey,
    tmp_path: Path,
) -> AsyncIterator[Pipeline]:
    """`pipeline`, with the collector verifying SendGrid webhooks against `sendgrid_key`
    (its public half as SendGrid shows it: base64 DER)."""
    hook, settings = receiver
    public = sendgrid_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings = settings.replace(sendgrid_public_key=base64.b64encode(public).decode())
    async with running(hook, settings, tmp_path / "logs") as started:
        yield started


async def eventually(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.2)
