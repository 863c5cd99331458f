"""Collector test fixtures: unit settings, an in-memory producer, a test client, helpers."""

from __future__ import annotations

import gzip
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from stream.collector.app import create_app
from stream.collector.producer import Record
from stream.collector.service import CollectorOptions
from stream.deadletters.record import Headers
from stream.errors import KafkaUnavailableError
from stream.settings import Settings
from stream.topics import Topics

BROWSER_KEY = "browser-key"
SERVER_KEY = "server-key"
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


class FakeProducer:
    """EventProducer's interface, in memory; `available = False` makes it fail like Kafka down."""

    def __init__(self, topics: Topics) -> None:
        self.topics = topics
        self.records: list[Record] = []
        self.available = True
        self.calls = 0

    async def send_all(self, records: Sequence[Record]) -> None:
        self.calls += 1
        if not self.available:
            raise KafkaUnavailableError("fake Kafka is down")
        self.records.extend(records)

    async def send_deadletter(self, raw: bytes, key: bytes | None, headers: Headers) -> None:
        await self.send_all([Record(self.topics.deadletter, key, raw, headers)])

    async def ping(self) -> bool:
        return self.available

    def events(self) -> list[dict[str, Any]]:
        return [orjson.loads(r.value) for r in self.records if r.topic != self.topics.deadletter]

    def deadletters(self) -> list[Record]:
        return [r for r in self.records if r.topic == self.topics.deadletter]

    def reasons(self) -> list[str]:
        return [dict(r.headers)["reason"].decode() for r in self.deadletters()]


@pytest.fixture
def unit_settings() -> Settings:
    """Settings of the app under test; its own Redis prefix (dedupe and replay live there)."""
    return Settings.from_env(
        environ={},
        write_keys=f"{BROWSER_KEY}=website:browser,{SERVER_KEY}=crm:server",
        topic_prefix="unit.",
        redis_prefix=f"unit{uuid.uuid4().hex[:8]}:",
    )


@pytest.fixture
def options() -> CollectorOptions:
    return CollectorOptions(redirect_hosts=("example.com",), pixel_cookie="ls_aid")


@pytest.fixture
def producer(unit_settings: Settings) -> FakeProducer:
    return FakeProducer(Topics.from_settings(unit_settings))


@pytest.fixture
def clock() -> Callable[[], datetime]:
    return lambda: NOW


@pytest.fixture
def app(
    unit_settings: Settings,
    producer: FakeProducer,
    options: CollectorOptions,
    clock: Callable[[], datetime],
    redis_client: aioredis.Redis,
) -> web.Application:
    """The public app with a fake Kafka and the real Redis (transport dedupe, replays)."""
    return create_app(unit_settings, producer, options=options, clock=clock, redis=redis_client)


@pytest.fixture
async def client(app: web.Application) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(await start_server(app)) as test_client:
        yield test_client


async def start_server(app: web.Application, **runner_kwargs: Any) -> TestServer:
    """A started TestServer; runner options (auto_decompress=False as in `run`) need this way."""
    server = TestServer(app)
    await server.start_server(**{"auto_decompress": False, **runner_kwargs})
    return server


def basic(key: str) -> dict[str, str]:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def track(event: str = "Ebook Downloaded", **fields: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "track",
        "event": event,
        "anonymousId": "anon-1",
        "messageId": fields.pop("messageId", f"m-{event}"),
        "timestamp": "2025-03-01T11:59:00.000Z",
        "properties": {"asset_id": "ebook-1"},
    }
    message.update(fields)
    return message


def gz(data: bytes) -> bytes:
    return gzip.compress(data)


def validate_canonical(event: dict[str, Any]) -> None:
    """The event passes schemas/canonical-event.schema.json and the engine's Event.from_dict."""
    from pathlib import Path

    import jsonschema_rs

    from stream.scoring.events import Event

    schema = Path(__file__).parents[2] / "schemas" / "canonical-event.schema.json"
    jsonschema_rs.validator_for(orjson.loads(schema.read_bytes())).validate(event)
    Event.from_dict(event)
