"""EventProducer without a broker: it fails fast and clearly, and the app answers 503."""

from __future__ import annotations

import orjson
from aiohttp.test_utils import TestClient

from stream.collector.app import create_app
from stream.collector.producer import EventProducer, Record
from stream.dev.process import free_port
from stream.errors import KafkaUnavailableError
from stream.settings import Settings
from stream.topics import Topics

from .conftest import BROWSER_KEY, basic, start_server, track


async def test_unreachable_kafka_is_kafka_unavailable() -> None:
    producer = EventProducer(f"127.0.0.1:{free_port()}", Topics("", 1), timeout=3.0)
    try:
        assert await producer.ping() is False
        try:
            await producer.send_all([Record("t", b"k", b"v")])
        except KafkaUnavailableError as exc:
            assert exc.retriable and "Kafka" in str(exc)
        else:
            raise AssertionError("send_all succeeded without a broker")
        await producer.send_all([])  # nothing to send needs no broker
    finally:
        await producer.stop()


async def test_app_with_unreachable_kafka_answers_503(unit_settings: Settings) -> None:
    settings = unit_settings.replace(kafka_bootstrap=f"127.0.0.1:{free_port()}")
    producer = EventProducer.from_settings(settings, timeout=3.0)
    app = create_app(settings, producer)
    try:
        async with TestClient(await start_server(app)) as client:
            response = await client.post(
                "/v1/batch", data=orjson.dumps({"batch": [track()]}), headers=basic(BROWSER_KEY)
            )
            assert response.status == 503
            assert response.headers["Retry-After"]
            assert (await client.get("/readyz")).status == 503
            assert (await client.get("/healthz")).status == 200
    finally:
        await producer.stop()
