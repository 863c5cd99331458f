"""SIGTERM while a request is in flight: the request finishes (bounded), then Kafka is
flushed; what the collector answered 200 for is on the topic."""

from __future__ import annotations

import asyncio
import os
import signal

import aiohttp
import orjson
import pytest

from stream.settings import Settings
from stream.topics import Topics
from tests.collector.serving import start_collector
from tests.kafka_helpers import read_all

pytestmark = pytest.mark.integration


async def test_a_body_still_arriving_at_sigterm_is_accepted_and_produced(
    settings: Settings,
) -> None:
    task = await start_collector(settings)
    key = next(iter(settings.parsed_write_keys()))
    body = orjson.dumps(
        {"type": "track", "event": "Pricing Viewed", "userId": "u-inflight",
         "messageId": "m-inflight-1", "timestamp": "2026-05-04T09:00:00.000Z"}
    )  # fmt: skip
    reader, writer = await asyncio.open_connection("127.0.0.1", settings.collector_port)
    writer.write(
        f"POST /v1/t HTTP/1.1\r\nHost: x\r\nAuthorization: {aiohttp.encode_basic_auth(key)}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body[:20]
    )
    await writer.drain()
    await asyncio.sleep(0.3)  # the handler is reading the body
    os.kill(os.getpid(), signal.SIGTERM)  # run() installed its handler
    await asyncio.sleep(0.3)
    writer.write(body[20:])
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(4096), timeout=10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    await asyncio.wait_for(task, timeout=20)
    records = await read_all(settings.kafka_bootstrap, Topics.from_settings(settings).events("web"))
    assert [orjson.loads(r.value)["user_id"] for r in records] == ["u-inflight"]


async def test_new_connections_are_refused_once_stopping(settings: Settings) -> None:
    task = await start_collector(settings)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(task, timeout=20)
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", settings.collector_port)
