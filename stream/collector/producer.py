"""EventProducer: AIOKafkaProducer that sends a request's records and waits for every ack."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from types import TracebackType
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from stream.deadletters.record import Headers
from stream.errors import KafkaUnavailableError
from stream.settings import Settings
from stream.topics import Topics

log = logging.getLogger(__name__)


class Record(NamedTuple):
    """One Kafka record to produce."""

    topic: str
    """Destination topic, prefix included."""
    key: bytes | None
    """Partitioning key: the identity key of an event, the original key of a dead letter."""
    value: bytes
    """Canonical event JSON, or the raw input bytes of a dead letter."""
    headers: Sequence[tuple[str, bytes]] = ()
    """Dead-letter reason headers; empty for events."""


class EventProducer:
    """Produces collector records; starts lazily so the collector serves while Kafka is down.

    `send_all` returns only when the broker acknowledged every record (acks=all, idempotent),
    which is what lets the HTTP answer be 200 only after every event is durable. Any failure or
    timeout becomes KafkaUnavailableError, answered 503 so SDKs retry.
    """

    def __init__(
        self,
        bootstrap: str,
        topics: Topics,
        *,
        timeout: float = 10.0,
        client_id: str = "leadstream-collector",
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.timeout = timeout
        self.client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, *, timeout: float = 10.0) -> EventProducer:
        return cls(settings.kafka_bootstrap, Topics.from_settings(settings), timeout=timeout)

    async def __aenter__(self) -> EventProducer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connect to Kafka; KafkaUnavailableError when the broker cannot be reached."""
        await self._started()

    async def stop(self) -> None:
        """Flush pending records and close the connections."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def send_all(self, records: Sequence[Record]) -> None:
        """Send every record and wait for every acknowledgement."""
        if not records:
            return
        try:
            async with asyncio.timeout(self.timeout):
                producer = await self._started()
                futures = [
                    await producer.send(r.topic, r.value, key=r.key, headers=list(r.headers))
                    for r in records
                ]
                await asyncio.gather(*futures)
        except (KafkaError, TimeoutError, OSError) as exc:
            raise KafkaUnavailableError(
                f"Kafka did not acknowledge {len(records)} records within {self.timeout}s: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    async def send_deadletter(self, raw: bytes, key: bytes | None, headers: Headers) -> None:
        """Send one dead letter (value = the raw input) and wait for its acknowledgement."""
        await self.send_all([Record(self.topics.deadletter, key, raw, headers)])

    async def ping(self) -> bool:
        """True when the cluster answers a metadata request (used by /readyz)."""
        try:
            async with asyncio.timeout(min(self.timeout, 5.0)):
                producer = await self._started()
                metadata = await producer.client.fetch_all_metadata()
        except (KafkaError, KafkaUnavailableError, TimeoutError, OSError):
            return False
        return bool(metadata.brokers())

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        async with self._lock:
            if self._producer is None:
                producer = _make_producer(self.bootstrap, self.client_id, self.timeout)
                try:
                    await producer.start()
                except (KafkaError, OSError) as exc:
                    await _quiet_stop(producer)
                    raise KafkaUnavailableError(
                        f"cannot reach Kafka at {self.bootstrap}: {exc}"
                    ) from exc
                except BaseException:
                    await _quiet_stop(producer)
                    raise
                self._producer = producer
            return self._producer


def _make_producer(bootstrap: str, client_id: str, timeout: float) -> AIOKafkaProducer:
    kwargs: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "client_id": client_id,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 2,
        "request_timeout_ms": int(timeout * 1000),
        # A dead letter may carry a whole request body (500 KiB by default) plus headers.
        "max_request_size": 2 * 1024 * 1024,
    }
    return AIOKafkaProducer(**kwargs)


async def _quiet_stop(producer: AIOKafkaProducer) -> None:
    try:
        await producer.stop()
    except Exception:  # a half-started client may fail to close; it holds nothing to flush
        log.debug("closing a producer that failed to start", exc_info=True)
