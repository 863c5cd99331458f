"""Run-wide real servers: one KRaft Kafka broker and one redis-server on free loopback ports.

They are started by `stream.dev` for the whole pytest session and stopped at its end. Each test
that asks for `settings` gets its own topic and Redis key prefixes, so tests never see each
other's records. If the servers cannot start, every test that needs them errors: nothing skips.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from stream.dev import DevEnvironment
from stream.dev.credentials import with_dev_credentials
from stream.dev.process import free_port
from stream.settings import Settings
from stream.topics import ensure_topics

_counter = itertools.count()


@pytest.fixture(scope="session")
def dev_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevEnvironment]:
    base = tmp_path_factory.mktemp("dev")
    settings = Settings.from_env(
        environ={},
        dev_dir=str(base),
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        kafka_controller_port=free_port(),
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        kafka_heap=os.environ.get("LEADSTREAM_TEST_KAFKA_HEAP", "512m"),
    )
    env = DevEnvironment(settings)
    try:
        env.up()
    except Exception:
        env.down()
        raise
    yield env
    env.down()


@pytest.fixture(scope="session")
def base_settings(dev_env: DevEnvironment) -> Settings:
    """The dev servers' settings with development credentials (random, in the test dev dir):
    there are no default write keys or secrets any more."""
    return with_dev_credentials(dev_env.settings)


@pytest.fixture
def kafka_bootstrap(base_settings: Settings) -> str:
    return base_settings.kafka_bootstrap


@pytest.fixture
async def settings(base_settings: Settings, tmp_path: Path) -> Settings:
    """Settings for one test: its own topics (created), Redis prefix and worker state dir."""
    tag = f"t{next(_counter)}{uuid.uuid4().hex[:6]}"
    settings = base_settings.replace(
        topic_prefix=f"{tag}.",
        redis_prefix=f"{tag}:",
        data_dir=str(tmp_path / "worker"),
        collector_port=free_port(),
        collector_internal_port=free_port(),
        worker_port=free_port(),
        notifier_port=free_port(),
        allow_private_urls=True,
        idle_tick_seconds=0.0,
    )
    await ensure_topics(settings)
    return settings


@pytest.fixture
async def redis_client(base_settings: Settings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(base_settings.redis_url)
    yield client
    await client.aclose()
