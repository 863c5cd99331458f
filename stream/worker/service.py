"""The worker: the consume loop, its stores and checkpoint, Redis snapshots, timers and
metrics, wired together from Settings, started and stopped as one.

Why not Faust's agents and tables (docs/worker.md, "Ownership"): its per-record stream costs
~100–150 µs per record whatever its settings, a table write and its changelog record another
~100–180 µs per changed lead, and a table may only be written while Faust hands the agent a
record. The worker owns its assignment (its own consumer in the workers' consumer group), its
state (RocksDB stores restored from the tables' changelog topics) and its timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import InconsistentGroupProtocolError

from stream import malloc, metrics
from stream.errors import SettingsError
from stream.lag import export_lag_forever
from stream.scoring import AccountState, Model, load_model
from stream.settings import Settings
from stream.store.marks import Holding
from stream.tasks import cancel_and_wait
from stream.topics import Topics, partition_for
from stream.worker.checkpoint import TP, Checkpoint, Staged
from stream.worker.clients import input_consumer, output_producer, restore_consumer, worker_group
from stream.worker.diagnostics import install_task_dump
from stream.worker.loop import ConsumeLoop, Listener
from stream.worker.outputs import BatchProducer
from stream.worker.restore import restore
from stream.worker.scoring import store_pipeline
from stream.worker.snapshots import RedisFlusher, StoreHeld, flush_forever
from stream.worker.stores import TABLES, Stores, changelog_topic

log = logging.getLogger("leadstream.worker")
GAUGE_SECONDS = 10.0  # how often the state's gauges are read and free memory given back


@functools.lru_cache(maxsize=1 << 16)
def home(key: bytes, partitions: int) -> int:
    """`partition_for`, remembered: murmur2 in Python costs ~15 µs a key, and the same lead
    ids come again and again (outputs are keyed by lead, identity asks for homes)."""
    return partition_for(key, partitions)


class Offsets:
    """The consumer's offset commit, as the checkpoint asks for it."""

    def __init__(self, consumer: AIOKafkaConsumer):
        self.consumer = consumer

    async def commit(self, offsets: Mapping[TP, int]) -> None:
        await self.consumer.commit({TopicPartition(*tp): o for tp, o in offsets.items()})


class Worker:
    """The worker's parts, started and stopped together."""

    def __init__(self, settings: Settings, model: Model | None = None):
        self.settings = settings
        self.model = model or load_model(settings.model_path or None)
        self.topics = Topics.from_settings(settings)
        self.stores = Stores(
            settings.data_dir,
            settings.rocksdb_block_cache_mib,
            settings.rocksdb_write_buffer_mib,
            settings.rocksdb_memtables_mib,
        )
        self.tasks: list[asyncio.Task[None]] = []
        self.loop_task: asyncio.Task[None] | None = None
        self.consumer: AIOKafkaConsumer | None = None
        self.loop: ConsumeLoop | None = None
        self.flusher: RedisFlusher | None = None
        self._clients: list[Any] = []

    def _changelog(self, table: str) -> str:
        return changelog_topic(self.settings.topic_prefix, table)

    async def start(self) -> None:
        settings, topics, stores = self.settings, self.topics, self.stores
        producer, consumer = output_producer(settings), input_consumer(settings, stores.on_disk)
        restorer = restore_consumer(settings)
        for client in (producer, restorer):
            await client.start()
            self._clients.append(client)
        outputs = [*topics.worker_outputs, *(self._changelog(t) for t in TABLES)]
        batches = await BatchProducer.for_topics(producer, outputs, home)

        scoring = store_pipeline(settings, self.model, stores, home)
        pipeline, due = scoring.pipeline, scoring.due
        held = StoreHeld(stores, self._holding, pipeline)
        flusher = self.flusher = RedisFlusher(settings, pipeline, held)
        staged_accounts: dict[int, dict[str, AccountState]] = {}

        def take_staged() -> Staged:
            accounts = dict(staged_accounts)
            staged_accounts.clear()
            return Staged(pipeline.take_landing(), due.take(), accounts)

        checkpoint = Checkpoint(
            topics=topics,
            producer=batches,
            stores=stores,
            offsets=Offsets(consumer),
            snapshots=flusher,
            take_staged=take_staged,
        )

        async def restore_partitions(partitions: list[int]) -> int:
            return await restore(stores, partitions, self._changelog, restorer)

        loop = self.loop = ConsumeLoop(
            consumer=consumer,
            topics=topics,
            pipeline=pipeline,
            checkpoint=checkpoint,
            ticks=scoring.ticks,
            stores=stores,
            restore=restore_partitions,
            model=self.model,
            staged_accounts=staged_accounts,
            checkpoint_max=settings.worker_checkpoint_max,
            order_wait_seconds=settings.worker_order_wait_ms / 1000.0,
            idle_tick_seconds=settings.idle_tick_seconds,
        )
        consumer.subscribe(
            [*topics.channel_topics, topics.by_lead, topics.accounts], listener=Listener(loop)
        )
        self.consumer = consumer
        try:
            await consumer.start()  # until the first assignment is restored
        except InconsistentGroupProtocolError:
            raise SettingsError(
                f"consumer group {worker_group(settings)} has members that assign partitions "
                "another way: workers of an earlier leadstream (Faust's per-record path) are "
                "still running; stop every worker of this deployment, then start them all "
                "with this version"
            ) from None
        self.loop_task = asyncio.create_task(loop.run(), name="worker-loop")
        self.tasks = [
            asyncio.create_task(flush_forever(flusher), name="worker-redis"),
            asyncio.create_task(self._watch_state(), name="worker-state-gauges"),
            asyncio.create_task(self._export_lag(), name="worker-lag"),
        ]
        install_task_dump(lambda: [], self.describe)

    def _holding(self) -> Holding | None:
        """The partitions whose stores are restored, for the snapshot guard."""
        loop = self.loop
        if loop is None or loop.rebalancing or loop.restoring:
            return None
        return Holding(loop.generation, frozenset(loop.owned))

    async def _export_lag(self) -> None:
        """Consumer lag as a metric, computed here so a plain Prometheus scrape shows it."""
        topics = self.topics
        await export_lag_forever(
            self.settings.kafka_bootstrap,
            worker_group(self.settings),
            [*topics.channel_topics, topics.by_lead],
            role="worker",
            prefix=self.settings.topic_prefix,
        )

    async def _watch_state(self) -> None:
        """Leads held, and the memory holding them, as gauges; free memory given back."""
        while True:
            metrics.LEADS_IN_STATE.set(self.stores.count("lead_state"))
            for kind, size in self.stores.memory().items():
                metrics.ROCKSDB_MEMORY.labels(kind).set(size)
            if self.loop is not None:
                metrics.STATES_CACHED.set(len(self.loop.pipeline.states))
            malloc.trim()
            await asyncio.sleep(GAUGE_SECONDS)

    def describe(self) -> str:
        """What `kill -USR1` logs about the loop."""
        loop = self.loop
        if loop is None or self.consumer is None:
            return "not started"
        return repr(
            {
                "owned": sorted(loop.owned),
                "generation": loop.generation,
                "assignment": sorted(map(str, self.consumer.assignment())),
                "paused": sorted(map(str, self.consumer.paused())),
                "held_for_order": sorted(loop.order.waiting()),
                "behind_merge": sorted(loop.pipeline.waiting_since),
                "delivered": {f"{t}:{p}": o for (t, p), o in loop.delivered.items()},
                "uncommitted": {
                    f"{t}:{p}": o for (t, p), o in loop.checkpoint.positions.committable().items()
                },
            }
        )

    @property
    def running(self) -> bool:
        return self.loop_task is not None and not self.loop_task.done()

    @property
    def assigned(self) -> bool:
        """The group has assigned this worker its partitions (no rebalance under way)."""
        return self.loop is not None and not self.loop.rebalancing

    @property
    def restored(self) -> bool:
        """Its partitions' stores are restored from their changelogs."""
        return self.loop is not None and not self.loop.restoring

    async def wait_stopped(self) -> None:
        """Until the loop ends (it raised, or `stop()` ended it)."""
        if self.loop_task is not None:
            await asyncio.wait([self.loop_task])

    async def stop(self) -> None:
        """Land the checkpoint, leave the group, flush Redis, close everything."""
        if self.loop is not None and self.loop_task is not None:
            self.loop.stop()
            await asyncio.wait([self.loop_task])
        await cancel_and_wait(self.tasks)
        if self.consumer is not None:
            await self.consumer.stop()
        if self.flusher is not None:
            with contextlib.suppress(Exception):
                await self.flusher.flush()
        for client in self._clients:
            await client.stop()
        self.stores.close()
