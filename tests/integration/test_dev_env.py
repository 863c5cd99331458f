"""The local servers answer for real, and `dev` refuses a taken port with a clear message."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from stream.dev import DevEnvironment
from stream.dev.kafka import LocalKafka, broker_answers
from stream.dev.process import free_port
from stream.errors import DevEnvironmentError
from stream.settings import Settings

pytestmark = pytest.mark.integration


async def test_broker_and_redis_answer(settings: Settings, redis_client: aioredis.Redis) -> None:
    assert await broker_answers(settings.kafka_bootstrap)
    assert await redis_client.ping()


def test_up_twice_is_harmless(dev_env: DevEnvironment) -> None:
    pid_before = dev_env.kafka.process.pid()
    dev_env.up()
    assert dev_env.kafka.process.pid() == pid_before
    status = dev_env.status()
    assert status.kafka_running and status.redis_running


def test_taken_port_is_refused_clearly(dev_env: DevEnvironment, tmp_path: object) -> None:
    taken = dev_env.settings.kafka_port  # the running broker holds it
    other = Settings.from_env(
        environ={},
        dev_dir=str(tmp_path),
        kafka_bootstrap=f"127.0.0.1:{taken}",
        kafka_controller_port=free_port(),
    )
    with pytest.raises(DevEnvironmentError, match=rf"port {taken} .*LEADSTREAM_KAFKA_BOOTSTRAP"):
        LocalKafka(other).start()


def test_down_leaves_foreign_pid_alone(tmp_path: object) -> None:
    settings = Settings.from_env(environ={}, dev_dir=str(tmp_path))
    env = DevEnvironment(settings)
    env.kafka.process.pid_file.parent.mkdir(parents=True)
    env.kafka.process.pid_file.write_text("1")  # pid 1 is not our broker
    assert env.down() == []
