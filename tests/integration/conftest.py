"""The three real processes for the metrics tests (test_metrics.py, test_prometheus.py).

Collector, worker and notifier run as subprocesses (as in tests/e2e) against the session's
Kafka and Redis, with a signed sales webhook and the Mailgun webhook switched on.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from stream.dev.process import free_port
from stream.dev.receiver import WebhookReceiver
from stream.settings import Settings
from tests.e2e.conftest import Pipeline, running

# Random-looking and fixed (conftest may be imported twice): the collector refuses guessable keys.
MAILGUN_KEY = "3115c43884994d3478eac37fb220943c7286290c0e489d9073171c1f556272c2"


@asynccontextmanager
async def running_pipeline(
    settings: Settings, hook: WebhookReceiver, log_dir: Path
) -> AsyncIterator[Pipeline]:
    """The three processes delivering to `hook`, each ready to work, then stopped."""
    port = free_port()
    await hook.start(port)
    settings = settings.replace(
        webhook_url=f"http://127.0.0.1:{port}/hooks/sales", mailgun_signing_key=MAILGUN_KEY
    )
    try:
        async with running(hook, settings, log_dir) as started:
            yield started
    finally:
        await hook.stop()


@pytest.fixture
async def pipeline(settings: Settings, tmp_path: Path) -> AsyncIterator[Pipeline]:
    """The pipeline with a sales webhook that answers at once."""
    hook = WebhookReceiver(settings.webhook_secret.split()[0])
    async with running_pipeline(settings, hook, tmp_path / "logs") as started:
        yield started


def mailgun_bot_open(event_id: str, recipient: str) -> dict[str, Any]:
    """A signed Mailgun `opened` event by a bot: the collector drops it as machine_open."""
    timestamp, token = str(int(time.time())), uuid.uuid4().hex
    signature = hmac.new(
        MAILGUN_KEY.encode(), f"{timestamp}{token}".encode(), hashlib.sha256
    ).hexdigest()
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": {
            "event": "opened",
            "id": f"mg-{event_id}",
            "timestamp": time.time(),
            "recipient": recipient,
            "client-info": {"bot": True, "user-agent": "Mozilla/5.0"},
            "message": {"headers": {"message-id": f"{event_id}@mail.example"}},
        },
    }
