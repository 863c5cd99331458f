"""Local Kafka (KRaft) and Redis for `leadstream dev`, the demo and the tests."""

from __future__ import annotations

from dataclasses import dataclass

from stream.dev.kafka import LocalKafka
from stream.dev.redis import LocalRedis
from stream.settings import Settings


@dataclass
class DevStatus:
    kafka_running: bool
    redis_running: bool
    kafka_log: str
    redis_log: str


class DevEnvironment:
    """Both servers together: `up` is harmless twice, `down` stops only what it started."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.kafka = LocalKafka(settings)
        self.redis = LocalRedis(settings)

    def up(self) -> None:
        self.redis.start()
        self.kafka.start()
        self.redis.wait_ready()
        self.kafka.wait_ready()

    def down(self) -> list[str]:
        stopped = []
        if self.kafka.stop():
            stopped.append("kafka")
        if self.redis.stop():
            stopped.append("redis")
        return stopped

    def status(self) -> DevStatus:
        return DevStatus(
            self.kafka.process.running(),
            self.redis.process.running(),
            str(self.kafka.log_file),
            str(self.redis.log_file),
        )


__all__ = ["DevEnvironment", "DevStatus", "LocalKafka", "LocalRedis"]
