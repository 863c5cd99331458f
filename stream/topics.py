"""Topic names (with the configured prefix), partition counts, and topic creation."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from aiokafka.partitioner import murmur2

from stream.settings import Settings

CHANNELS = ("web", "email", "social", "crm")
# The product channel (trial, activation) rides on the web topic: same clients, same volume.
CHANNEL_TOPIC = {"web": "web", "product": "web", "email": "email", "social": "social", "crm": "crm"}


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a key (murmur2, as the Java client,
    aiokafka and Faust do), so a record placed by hand lands where a keyed one would."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


@dataclass(frozen=True)
class Topics:
    """Every topic leadstream reads or writes, named once."""

    prefix: str
    partitions: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Topics:
        return cls(settings.topic_prefix, settings.partitions)

    def events(self, channel: str) -> str:
        return f"{self.prefix}leads.events.{CHANNEL_TOPIC[channel]}"

    @property
    def channel_topics(self) -> list[str]:
        return [self.events(c) for c in CHANNELS]

    @property
    def by_lead(self) -> str:
        return f"{self.prefix}leads.events.by_lead"

    @property
    def handoff(self) -> str:
        return f"{self.prefix}leads.handoff"

    @property
    def ledger(self) -> str:
        return f"{self.prefix}leads.ledger"

    @property
    def accounts(self) -> str:
        """Contact updates keyed by account id: written and read by the worker."""
        return f"{self.prefix}leads.accounts"

    @property
    def account_events(self) -> str:
        """MQA reached / lost, as CloudEvents keyed by account id."""
        return f"{self.prefix}leads.account_events"

    @property
    def shadow(self) -> str:
        """A shadow model's transitions (LEADSTREAM_SHADOW_MODEL), keyed by lead id."""
        return f"{self.prefix}leads.shadow"

    @property
    def deadletter(self) -> str:
        return f"{self.prefix}leads.deadletter"

    @property
    def handoff_deadletter(self) -> str:
        return f"{self.prefix}leads.handoff.deadletter"

    @property
    def worker_outputs(self) -> list[str]:
        """Every topic the worker writes besides its changelogs."""
        return [
            self.handoff,
            self.by_lead,
            self.deadletter,
            self.ledger,
            self.accounts,
            self.account_events,
            self.shadow,
        ]

    def all(self) -> dict[str, int]:
        """name -> partitions; co-partitioned topics share one count, dead letters need fewer."""
        names = dict.fromkeys(
            [
                *self.channel_topics,
                self.by_lead,
                self.handoff,
                self.ledger,
                self.accounts,
                self.account_events,
                self.shadow,
            ],
            self.partitions,
        )
        names[self.deadletter] = 1
        names[self.handoff_deadletter] = 1
        return names


async def ensure_topics(settings: Settings, compacted: tuple[str, ...] = ()) -> None:
    """Create missing topics with the expected partition counts; refuse a mismatch loudly.

    A person's inputs, by-lead records and stores share a partition number, so a topic that
    was auto-created with another count would break the worker much later: we check it here.
    `compacted` names more co-partitioned topics, created compacted (the worker's table
    changelogs, created here before any worker writes to them).
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    from stream.errors import SettingsError

    topics = Topics.from_settings(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        wanted = {**topics.all(), **dict.fromkeys(compacted, settings.partitions)}
        # Create first, then describe: a metadata request for a missing topic would let a
        # broker with auto-creation make it with its default partition count.
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name,
                num_partitions=n,
                replication_factor=1,
                topic_configs={"cleanup.policy": "compact"} if name in compacted else {},
            )
            for name, n in wanted.items()
            if name not in existing
        ]
        if missing:
            # Another process may create one meanwhile: the check below still runs.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
        have = await _described(admin, list(wanted))
        wrong = {n: have[n] for n in wanted if have.get(n, wanted[n]) != wanted[n]}
        if wrong:
            raise SettingsError(
                f"topics {wrong} exist with other partition counts than "
                f"LEADSTREAM_PARTITIONS={settings.partitions}: delete them or set the count"
            )
    finally:
        await admin.close()


async def _described(admin: Any, names: list[str], timeout: float = 15.0) -> dict[str, int]:
    """name -> partitions, waiting until every topic has a leader (new ones take a moment)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        described = await admin.describe_topics(names)
        have = {t["topic"]: len(t["partitions"]) for t in described if t.get("error_code", 0) == 0}
        if len(have) == len(names) or asyncio.get_running_loop().time() > deadline:
            return have
        await asyncio.sleep(0.2)
