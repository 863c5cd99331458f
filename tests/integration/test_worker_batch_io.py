"""The batch worker's Kafka parts on the real broker: batched produce, store restore from the
changelog topics, and a consumer group that refuses to mix the two input paths."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

from stream.errors import SettingsError
from stream.settings import Settings
from stream.topics import Topics, ensure_topics, partition_for
from stream.worker.clients import worker_group
from stream.worker.outputs import BatchProducer, Outgoing
from stream.worker.restore import restore
from stream.worker.service import Worker
from stream.worker.stores import Stores, changelog_topic
from tests.kafka_helpers import produce, read_all

pytestmark = pytest.mark.integration


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    client = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await client.start()
    yield client
    await client.stop()


@pytest.fixture
async def changelogs(settings: Settings) -> Settings:
    tables = ("aliases", "lead_state", "tick_due", "merges", "accounts")
    await ensure_topics(
        settings, compacted=tuple(changelog_topic(settings.topic_prefix, t) for t in tables)
    )
    return settings


async def test_batched_records_land_where_keyed_sends_would_in_order_with_headers(
    settings: Settings, producer: AIOKafkaProducer
) -> None:
    topics = Topics.from_settings(settings)
    out = await BatchProducer.for_topics(producer, [topics.ledger, topics.by_lead])
    records = [
        Outgoing(topics.ledger, f"lead-{n % 7}".encode(), f"v{n}".encode(), [("n", b"%d" % n)])
        for n in range(300)
    ]
    records.append(Outgoing(topics.by_lead, b"lead-1", b"hop", [], 3))  # placed by hand
    last = await out.produce(records)
    assert last[(topics.by_lead, 3)] == 0
    landed = await read_all(settings.kafka_bootstrap, topics.ledger)
    assert len(landed) == 300
    assert sum(n + 1 for (t, _p), n in last.items() if t == topics.ledger) == 300
    for r in landed:
        assert r.partition == partition_for(r.key, settings.partitions)
        assert dict(r.headers)["n"] == r.value[1:]
    for key in {r.key for r in landed}:  # per key in the order given
        mine = [int(r.value[1:]) for r in sorted(landed, key=lambda r: r.offset) if r.key == key]
        assert mine == sorted(mine)


async def test_a_store_restores_from_its_changelogs_and_later_reads_only_what_is_new(
    changelogs: Settings, tmp_path: Path
) -> None:
    settings = changelogs
    states = changelog_topic(settings.topic_prefix, "lead_state")
    aliases = changelog_topic(settings.topic_prefix, "aliases")
    home = [f"u{n}".encode() for n in range(200) if partition_for(f"u{n}".encode(), 4) == 1]

    async def write(topic: str, records: list[tuple[bytes, bytes | None]]) -> None:
        client = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
        await client.start()
        try:
            await asyncio.gather(
                *[await client.send(topic, value=v, key=k, partition=1) for k, v in records]
            )
        finally:
            await client.stop()

    await write(states, [(k, b"old-" + k) for k in home] + [(k, b"new-" + k) for k in home[:5]])
    await write(states, [(home[-1], None)])  # a tombstone: the lead was handed over
    await write(aliases, [(b'"anon:c1"', b'"u1"')])
    stores = Stores(str(tmp_path), block_cache_mib=4, write_buffer_mib=1, memtables_mib=8)
    reader = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await reader.start()
    try:

        def topic(table: str) -> str:
            return changelog_topic(settings.topic_prefix, table)

        applied = await restore(stores, [1, 2], topic, reader)
        assert applied == 2 * len(home) - len(home) + 5 + 1 + 1
        store = stores[1]
        assert store.get("lead_state", home[0]) == b"new-" + home[0]
        assert store.get("lead_state", home[7]) == b"old-" + home[7]
        assert store.get("lead_state", home[-1]) is None
        assert store.get("aliases", b'"anon:c1"') == b'"u1"'
        assert store.offset("lead_state") == len(home) + 5
        assert stores[2].offset("lead_state") is None  # an empty changelog partition
        # Again, with two records more: only those are read.
        await write(states, [(home[1], b"newer"), (b"late", b"s")])
        assert await restore(stores, [1], topic, reader) == 2
        assert store.get("lead_state", home[1]) == b"newer"
        # A store that has applied more than the topic holds (the topic was made again) is
        # wiped and read from the start.
        store.write({}, {"lead_state": 10_000})
        assert await restore(stores, [1], topic, reader) == len(home) + 5 + 1 + 1 + 2
        assert stores[1].get("lead_state", home[1]) == b"newer"
    finally:
        await reader.stop()
        stores.close()


async def test_a_worker_refuses_a_group_with_workers_of_the_faust_path(
    changelogs: Settings, tmp_path: Path
) -> None:
    """Workers of earlier releases (Faust's per-record path) commit in the same group with
    another assignor ("faust"; the loop's is "leadstream-copartitioned"), so the broker
    refuses the second kind instead of letting both score the same partitions, and the
    worker says what to do. aiokafka's round robin assignor stands in for Faust's."""
    settings = changelogs.replace(data_dir=str(tmp_path))
    topics = Topics.from_settings(settings)
    await produce(settings.kafka_bootstrap, topics.events("web"), [(b"k", b"{}")])
    faust_like = AIOKafkaConsumer(
        *topics.channel_topics,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=worker_group(settings),
        partition_assignment_strategy=(RoundRobinPartitionAssignor,),
        session_timeout_ms=6000,
        heartbeat_interval_ms=2000,
    )
    await faust_like.start()  # joined, holds every partition
    worker = Worker(settings)
    try:
        with pytest.raises(SettingsError, match="workers of an earlier leadstream"):
            await worker.start()
    finally:
        await worker.stop()
        await faust_like.stop()
