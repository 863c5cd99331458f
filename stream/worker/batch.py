"""The worker with `LEADSTREAM_WORKER_INPUT=batch`: the consume loop, its stores and checkpoint,
Redis snapshots, metrics and health pages. Built from Settings only; no Faust.

Why no Faust here (docs/worker.md, "Ownership"): its per-record stream costs ~100–150 µs per
record whatever its settings, a table write and its changelog record another ~100–180 µs per
changed lead, and a table may only be written while Faust hands the agent a record. This path
owns its assignment (its own consumer in the worker's consumer group), its state (RocksDB
stores restored from the tables' changelog topics) and its timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import InconsistentGroupProtocolError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stream import health, metrics
from stream.errors import SettingsError
from stream.lag import export_lag_forever
from stream.pipeline.core import Pipeline, Tables
from stream.pipeline.shadow import shadow_model
from stream.pipeline.staging import StagedMapping
from stream.pipeline.ticks import TickScheduler
from stream.scoring import AccountState, Model, load_model
from stream.scoring.identity import Identity, secret_or_dev
from stream.settings import Settings
from stream.store.marks import Holding
from stream.topics import Topics, partition_for
from stream.worker.assignor import CoPartitionAssignor
from stream.worker.checkpoint import TP, Checkpoint, Staged
from stream.worker.diagnostics import install_task_dump
from stream.worker.loop import ConsumeLoop, Listener
from stream.worker.offsets import worker_group
from stream.worker.outputs import MAX_BATCH_BYTES, BatchProducer
from stream.worker.restore import restore
from stream.worker.snapshots import RedisFlusher, StoreHeld, flush_forever
from stream.worker.stopping import bounded_stop
from stream.worker.stores import TABLES, DueView, Stores, changelog_topic, raw_view, text_view

log = logging.getLogger("leadstream.worker")
LEADS_SECONDS = 10.0  # how often leadstream_worker_leads is counted
FETCH_WAIT_MS = 20


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


class BatchWorker:
    """The batch path's parts, started and stopped together."""

    def __init__(self, settings: Settings, model: Model | None = None):
        self.settings = settings
        self.model = model or load_model(settings.model_path or None)
        self.topics = Topics.from_settings(settings)
        self.stores = Stores(
            settings.data_dir, settings.rocksdb_block_cache_mib, settings.rocksdb_write_buffer_mib
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
        bootstrap = settings.kafka_bootstrap
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            client_id="leadstream-worker",
            acks="all",
            max_batch_size=MAX_BATCH_BYTES,
        )
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id="leadstream-worker",
            group_id=worker_group(settings),
            group_instance_id=settings.worker_instance_id or None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            partition_assignment_strategy=(CoPartitionAssignor,),
            # A killed worker's partitions move once its session times out: 6 s, the
            # broker's minimum (group.min.session.timeout.ms); heartbeats run in their own task.
            session_timeout_ms=6000,
            heartbeat_interval_ms=2000,
            # An input is caught up only as of a fetch answered after the held record came;
            # a fetch of partitions with nothing new waits this long at the broker. At the
            # default 500 ms nearly every release during a drain waited out the order wait.
            fetch_max_wait_ms=FETCH_WAIT_MS,
        )
        restorer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id="leadstream-worker-restore",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        for client in (producer, restorer):
            await client.start()
            self._clients.append(client)
        outputs = [
            topics.handoff,
            topics.by_lead,
            topics.deadletter,
            topics.ledger,
            topics.accounts,
            topics.account_events,
            topics.shadow,
            *(self._changelog(t) for t in TABLES),
        ]
        batches = await BatchProducer.for_topics(producer, outputs, home)

        identity = Identity(settings.partitions, secret_or_dev(settings.identity_secret), home)
        aliases = {p: text_view(stores, p, "aliases") for p in range(settings.partitions)}
        states = {p: raw_view(stores, p, "lead_state") for p in range(settings.partitions)}
        merges = {p: text_view(stores, p, "merges") for p in range(settings.partitions)}
        due = StagedMapping(DueView(stores))
        ticks = TickScheduler(due)
        pipeline = Pipeline(
            Tables(aliases.__getitem__, states.__getitem__, merges.__getitem__),
            self.model,
            identity,
            ticks,
            topics.by_lead,
            merge_timeout=settings.worker_merge_timeout_seconds,
            observe_latency=True,
            shadow_model=shadow_model(settings),
        )
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
            ticks=ticks,
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
                f"consumer group {worker_group(settings)} has workers running with the other "
                f"LEADSTREAM_WORKER_INPUT than {settings.worker_input!r}: stop every worker "
                "of this deployment, then start them all with the same value"
            ) from None
        self.loop_task = asyncio.create_task(loop.run(), name="worker-loop")
        self.tasks = [
            asyncio.create_task(flush_forever(flusher), name="worker-redis"),
            asyncio.create_task(self._count_leads(), name="worker-leads"),
            asyncio.create_task(
                export_lag_forever(
                    bootstrap,
                    worker_group(settings),
                    [*topics.channel_topics, topics.by_lead],
                    role="worker",
                    prefix=settings.topic_prefix,
                ),
                name="worker-lag",
            ),
        ]
        install_task_dump(lambda: [], self.describe)

    def _holding(self) -> Holding | None:
        """The partitions whose stores are restored, for the snapshot guard."""
        loop = self.loop
        if loop is None or loop.rebalancing or loop.restoring:
            return None
        return Holding(loop.generation, frozenset(loop.owned))

    async def _count_leads(self) -> None:
        while True:
            metrics.LEADS_IN_STATE.set(self.stores.count("lead_state"))
            await asyncio.sleep(LEADS_SECONDS)

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

    async def wait_stopped(self) -> None:
        """Until the loop ends (it raised, or `stop()` ended it)."""
        if self.loop_task is not None:
            await asyncio.wait([self.loop_task])

    async def stop(self) -> None:
        """Land the checkpoint, leave the group, flush Redis, close everything."""
        if self.loop is not None and self.loop_task is not None:
            self.loop.stop()
            await asyncio.wait([self.loop_task])
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.consumer is not None:
            await self.consumer.stop()
        if self.flusher is not None:
            with contextlib.suppress(Exception):
                await self.flusher.flush()
        for client in self._clients:
            await client.stop()
        self.stores.close()


def web_app(worker: BatchWorker) -> web.Application:
    """/metrics, /healthz (the loop runs) and /readyz (partitions assigned, stores restored)."""

    async def metrics_page(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"content-type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return health.alive(running=worker.running)

    async def readyz(_: web.Request) -> web.Response:
        loop = worker.loop
        return health.readiness(
            running=worker.running,
            assigned=loop is not None and not loop.rebalancing,
            recovered=loop is not None and not loop.restoring,
        )

    app = web.Application()
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT (or the loop fails), then stop within the bound."""
    worker = BatchWorker(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, bounded_stop(stop.set))
    runner = web.AppRunner(web_app(worker), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.metrics_host, settings.worker_port).start()
    try:
        await worker.start()
        stopped = asyncio.create_task(stop.wait())
        ended = asyncio.create_task(worker.wait_stopped())
        await asyncio.wait([stopped, ended], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if worker.loop_task is not None and worker.loop_task.done():
            worker.loop_task.result()  # the loop failed: say why, exit non-zero
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await worker.stop()
        await runner.cleanup()


def run(settings: Settings) -> None:
    """The batch path of `leadstream worker` (the caller, `stream.worker.app.run`, checked
    the settings and the data dir and created the topics)."""
    asyncio.run(serve(settings))
