"""The Faust app: two agents, two RocksDB tables, a Redis flusher. Built from Settings only.

Agents run with `concurrency=1`: with more, faust-streaming can commit an offset past a record
that is still being processed and lose it after a crash (faust issue #606). We scale out with
partitions and worker processes instead. Exactly-once comes from idempotent state (a per-lead
offset watermark and event-id dedupe inside each lead's state), not from Faust's experimental
transactions.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from pathlib import Path
from typing import Any, cast

import faust
import orjson
from aiohttp.web import Response
from aiokafka.errors import IllegalStateError, KafkaError
from faust.types import TP
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from stream import health, logs, metrics
from stream.credentials import check_identity_secret
from stream.deadletters.record import Headers
from stream.errors import SettingsError
from stream.lag import export_lag_forever
from stream.pipeline.core import Pipeline, Tables, observe_since
from stream.pipeline.processor import AccountStep, Emit, Record, channel_source, header
from stream.pipeline.shadow import shadow_model
from stream.pipeline.staging import StagedMapping
from stream.pipeline.ticks import TickScheduler
from stream.scoring import Model, load_model
from stream.scoring.identity import Identity, secret_or_dev
from stream.settings import Settings
from stream.topics import Topics, ensure_topics, partition_for
from stream.worker import faustfix
from stream.worker.diagnostics import install_task_dump
from stream.worker.gapguard import GapGuard, Verdict
from stream.worker.leadcount import leads_held
from stream.worker.offsets import seed_group_offsets, starting_offsets, worker_group
from stream.worker.order import CoPartitionMerge
from stream.worker.snapshots import FaustHeld, RedisFlusher, flush_forever
from stream.worker.stopping import bounded_stop
from stream.worker.stores import TABLES, changelog_topic

log = logging.getLogger("leadstream.worker")
# topic, key, value, headers, partition (None: by key)
Outgoing = tuple[str, bytes | None, bytes, Headers, int | None]
RAW: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}


def rocksdb_options(settings: Settings) -> dict[str, int]:
    """RocksDB's defaults (2 GiB block cache, 3 x 64 MiB write buffers per partition DB) are
    far too heavy for a small worker: capped from Settings (the bench's P-faust uses the same)."""
    mib = 1024 * 1024
    return {
        "block_cache_size": settings.rocksdb_block_cache_mib * mib,
        "block_cache_compressed_size": 0,
        "write_buffer_size": settings.rocksdb_write_buffer_mib * mib,
        "max_write_buffer_number": 2,
        "max_open_files": 256,
    }


def faust_options(settings: Settings) -> dict[str, Any]:
    """How every Faust app of ours runs, the worker and the bench's P-faust baseline alike, so
    a side-by-side measurement compares the same broker, store and commit settings."""
    return {
        "broker": ";".join(f"kafka://{b.strip()}" for b in settings.kafka_bootstrap.split(",")),
        "store": "rocksdb://",
        "datadir": settings.data_dir,
        "topic_partitions": settings.partitions,
        "topic_replication_factor": 1,
        "consumer_auto_offset_reset": "earliest",
        "web_port": settings.worker_port,
        "web_bind": settings.metrics_host,
        "web_tables_enabled": False,  # table contents are personal data
        "web_router_enabled": False,
        "autodiscover": False,
        "broker_commit_interval": 1.0,
        # A killed worker's partitions are reassigned once its session times out: 6 s (the
        # broker's group.min.session.timeout.ms) instead of Faust's 60 s keeps a restart after
        # SIGKILL quick. Heartbeats run in the client's own task, three per session.
        "broker_session_timeout": 6.0,
        "broker_heartbeat_interval": 2.0,
        # A revocation must not wait for records held unacknowledged (for order, or behind a
        # merge): Faust commits what was acknowledged and the new owner reads the rest again.
        "stream_wait_empty": False,
        "consumer_group_instance_id": settings.worker_instance_id or None,
        "rocksdb_options": rocksdb_options(settings),
    }


WAKE_KEY = b"__wake__"


def changelogs(settings: Settings) -> tuple[str, ...]:
    """The tables' changelog topics, named as Faust names them (both input paths use them)."""
    return tuple(changelog_topic(settings.topic_prefix, t) for t in TABLES)


def create_app(settings: Settings, model: Model | None = None) -> faust.App:
    faustfix.install()
    model = model or load_model(settings.model_path or None)
    topics = Topics.from_settings(settings)
    app = faust.App(
        f"{settings.topic_prefix}leadstream-worker",
        producer_linger=0.005,
        **faust_options(settings),
    )
    by_lead_topic = app.topic(topics.by_lead, partitions=settings.partitions, **RAW)
    # Tables pick their codec from key_type/value_type: bytes is raw, anything else JSON.
    # Changelogs stay compacted-only (faust's default for tables): a changelog emptied by
    # retention can hang recovery forever (faust #597, #651).
    parts = settings.partitions
    aliases = app.Table(TABLES[0], key_type=str, value_type=str, partitions=parts)
    states = app.Table(TABLES[1], key_type=bytes, value_type=bytes, partitions=parts)
    tick_due = app.Table(TABLES[2], key_type=str, value_type=str, partitions=parts)
    merges = app.Table(TABLES[3], key_type=str, value_type=str, partitions=parts)
    account_table = app.Table(TABLES[4], key_type=bytes, value_type=bytes, partitions=parts)
    accounts_topic = app.topic(topics.accounts, partitions=parts, **RAW)

    due = StagedMapping(cast(Any, tick_due))  # written with the batch, like the states
    ticks = TickScheduler(due)
    flusher: RedisFlusher
    identity = Identity(parts, secret_or_dev(settings.identity_secret), partition_for)
    pipeline = Pipeline(
        Tables.shared(aliases, states, merges),
        model,
        identity,
        ticks,
        topics.by_lead,
        merge_timeout=settings.worker_merge_timeout_seconds,
        on_state=lambda lead_id, state: flusher.mark(lead_id, state),
        observe_latency=True,
        shadow_model=shadow_model(settings),
    )
    held = FaustHeld(app, states, account_table, topics.channel_topics, pipeline)
    flusher = RedisFlusher(settings, pipeline, held)
    inputs_in_order = [*topics.channel_topics, topics.by_lead]
    order: CoPartitionMerge[Record] = CoPartitionMerge(
        inputs_in_order, settings.worker_order_wait_ms / 1000.0
    )
    last_seen: dict[int, float] = {}  # partition -> when the agent last saw a record of it
    produced_next: dict[int, int] = {}  # by-lead partition -> offset after our last record
    woken: dict[int, float] = {}  # partition -> when a wake record was last sent to it

    def produce_all(emits: list[Emit]) -> list[Outgoing]:
        """The records of a batch's emits, in order; by-lead records to their lead's home."""
        out: list[Outgoing] = []
        for emit in emits:
            for key, value, headers in emit.handoffs:
                out.append((topics.handoff, key, value, headers, None))
            for key, body, headers, home in emit.by_lead:
                out.append((topics.by_lead, key, orjson.dumps(body), headers, home))
            for dl_key, dl_value, dl_headers in emit.deadletters:
                out.append((topics.deadletter, dl_key, dl_value, dl_headers, None))
            for key, value in emit.ledger:
                out.append((topics.ledger, key, value, [], None))
            for key, value in emit.accounts:
                out.append((topics.accounts, key, value, [], None))
            for key, value, headers in emit.account_events:
                out.append((topics.account_events, key, value, headers, None))
            for key, value, headers in emit.shadow:
                out.append((topics.shadow, key, value, headers, None))
        return out

    async def send_all(emits: list[Emit]) -> None:
        """Produce a batch's records and wait until Kafka has acknowledged every one, trying
        again until it has.

        An exception escaping the agent would ack the batch and lose it, so a failed send
        waits and repeats the whole batch: handoffs repeat with the same ce_id, by-lead records
        are no-ops the second time, so repeating is safe. Straight to the Kafka client, not
        through Faust's topic objects: a third of the worker's time went there.
        """
        records = produce_all(emits)
        delay = 0.5
        while records:
            try:
                waits = [
                    await app.producer.send(topic, key, value, partition, None, headers)
                    for topic, key, value, headers, partition in records
                ]
                for fut in waits:
                    meta = await fut
                    if meta.topic == topics.by_lead:
                        produced_next[meta.partition] = max(
                            produced_next.get(meta.partition, 0), meta.offset + 1
                        )
                return
            except KafkaError as exc:
                log.warning("producing failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    def to_record(event: faust.types.EventT[Any]) -> Record:
        m = event.message
        raw: Any = m.headers.items() if isinstance(m.headers, dict) else (m.headers or [])
        headers = [(str(k), v if isinstance(v, bytes) else str(v).encode()) for k, v in raw]
        source = None if m.topic == topics.by_lead else channel_source(m.topic, m.partition)
        return Record(
            m.topic,
            m.partition,
            m.offset,
            m.key,
            m.value or b"",
            headers,
            source,
            ref=event,
            fetched_ms=polled_ms(m.tp),
        )

    def stamp(record: Record) -> int:
        """The acceptance stamp (µs) that orders a partition's inputs: the collector's
        `accepted_at` header (kept by by-lead records), else the record's own timestamp."""
        accepted = header(record, "accepted_at")
        if accepted is not None and accepted.isdigit():
            return int(accepted)
        return int(cast(Any, record.ref).message.timestamp * 1_000_000)

    def client() -> Any:
        return app.consumer._thread._ensure_consumer()  # type: ignore[attr-defined]

    def polled_ms(tp: Any) -> int:
        """When the client last had a fetch answer for `tp` (0: never, or not assigned)."""
        try:
            return int(client().last_poll_timestamp(tp) or 0)
        except Exception:  # noqa: BLE001 - not assigned (any more), or not started yet
            return 0

    def caught_up_in(partition: int, topic: str, head: Record) -> bool:
        """Whether this worker has been handed everything `topic` had in `partition` as of a
        fetch answered after `head` was fetched (and every by-lead record it produced there
        itself): then no record accepted before the head can still come from it."""
        tp = TP(topic, partition)
        delivered = guard.next.get(tp)
        if delivered is None or polled_ms(tp) < head.fetched_ms:
            return False
        try:
            highwater = client().highwater(tp)
        except Exception:  # noqa: BLE001 - not assigned (any more), or not fetched yet
            return False
        if highwater is None:
            return False
        if topic == topics.by_lead:
            highwater = max(highwater, produced_next.get(partition, 0))
        return bool(delivered >= highwater)

    def write_landing(at: dict[int, faust.types.EventT[Any]]) -> None:
        """The batch's table writes, each under an event of its partition (Faust picks the
        RocksDB store and the changelog partition from the current event)."""
        landing = pipeline.take_landing()
        for (partition, lead_id), state in landing.states.items():
            faustfix.set_current_event(at[partition])
            if state is None:
                states.pop(lead_id.encode(), None)
            else:
                states[lead_id.encode()] = state.encode()
        for table, writes in ((aliases, landing.aliases), (merges, landing.merges)):
            for (partition, key), value in writes.items():
                faustfix.set_current_event(at[partition])
                if value is None:
                    table.pop(key, None)
                else:
                    table[key] = value
        for key, value in due.take().items():
            faustfix.set_current_event(at[int(key.split(":", 1)[0])])
            if value is None:
                tick_due.pop(key, None)
            else:
                tick_due[key] = value
        for visitor_id, lead_id in landing.absorbed:
            flusher.absorb(visitor_id, lead_id)

    guard = GapGuard()
    group = f"{settings.topic_prefix}leadstream-worker"
    inputs = {*topics.channel_topics, topics.by_lead}

    async def refetch(where: dict[Any, int]) -> None:
        """Seek back where records must be read again; a partition revoked meanwhile is the
        new owner's to read from the committed offset."""
        mine = app.consumer.assignment()
        for tp, offset in where.items():
            if tp not in mine:
                continue
            try:
                await app.consumer.seek(tp, offset)
            except IllegalStateError:  # revoked between the check and the seek
                continue

    async def expect_committed() -> None:
        """After an assignment, before the seek and the first record: where each input
        partition must start (stream/worker/offsets.py makes sure there is an offset)."""
        mine = [tp for tp in app.consumer.assignment() if tp.topic in inputs]
        try:
            starts: dict[Any, int] = dict(
                await starting_offsets(settings.kafka_bootstrap, group, mine)
            )
        except KafkaError as exc:
            log.warning("no starting offsets (%s): holes are found only after a first record", exc)
            starts = {}
        guard.expect({tp: starts[tp] for tp in mine if tp in starts})

    @app.timer(1.0)  # type: ignore[untyped-decorator]
    async def watch_for_stalls() -> None:
        if app.rebalancing:
            return  # assignment, positions and commits are Faust's until it is done
        if not guard.next or not waiting or not waiting[0].empty():
            return  # records are waiting: they will be admitted (or found a hole) first
        mine = set(app.consumer.assignment())
        positions: dict[Any, int | None] = {}
        for tp in list(guard.next):
            if tp in mine:  # revoked since: not ours to ask about (faust raises)
                try:
                    position = await app.consumer.position(cast(Any, tp))
                    highwater = client().highwater(tp)
                except Exception:  # noqa: BLE001 - revoked between the check and the call
                    continue
                # Read past the guard, or records there to read: either way some should
                # have come (a partition sought back can sit at the guard, unfetched).
                positions[tp] = max(position or 0, highwater or 0)
        await refetch(guard.stalled(positions))
        if order.waiting() or pipeline.waiting_since:
            return  # records held for order or a merge are unacknowledged on purpose
        committed = cast(Any, app.consumer)._committed_offset  # Faust's, after its commits
        await refetch(guard.uncommitted({tp: committed.get(tp) for tp in positions}))

    @app.timer(0.05)  # type: ignore[untyped-decorator]
    async def wake_held() -> None:
        """Records held for order, or behind an overdue merge, go once the inputs they wait
        for are caught up or their wait is over; the agent only runs when a record comes, so
        a small `wake` record is sent through the partition to let it decide."""
        if not waiting or not waiting[0].empty():
            return
        now = time.monotonic()
        for partition in {*order.waiting(), *(p for p, _l in pipeline.waiting_since)}:
            if now - woken.get(partition, 0.0) < 0.1:
                continue
            if order.ready(partition, functools.partial(caught_up_in, partition)) or (
                pipeline.overdue(partition)
            ):
                woken[partition] = now
                body = orjson.dumps({"control": "wake"})
                await by_lead_topic.send(key=WAKE_KEY, value=body, partition=partition)

    async def land(
        emits: list[Emit], at: dict[int, faust.types.EventT[Any]], generation: int
    ) -> bool:
        """Produce a batch's records, wait for their acks, write the tables; then its
        finished records may be acknowledged to Faust (and their offsets committed).

        A batch of an assignment that has ended meanwhile (a rebalance, or the worker
        stopping: Faust closes the tables before it stops the agent) writes nothing and is
        not acknowledged: its partitions may be another worker's by now, whose state a late
        write would overwrite in the changelog; whoever owns them reads the records again
        from the committed offset (its outputs repeat, with the same ids)."""
        await send_all(emits)
        for emit in emits:
            for _key, _value, headers in emit.handoffs:
                received = dict(headers).get("ce_receivedat")
                observe_since(received.decode() if received else None, metrics.EVENT_TO_HANDOFF)
        if app.should_stop or app.rebalancing or app.consumer_generation_id != generation:
            pipeline.take_landing()
            due.take()
            metrics.BATCHES_DROPPED.inc()
            log.info("a batch of an ended assignment is not written; its records come again")
            return False
        write_landing(at)
        for emit in emits:
            flusher.add(emit)
        return True

    waiting: list[Any] = []  # the agent's queue: records fetched, not yet processed

    async def from_commit() -> None:
        """Everything held goes (for order, behind a merge, the tick heaps and stream time):
        every input partition is to be read again from its committed offset."""
        ticks.forget_partitions()
        order.drop(())
        pipeline.forget_partitions(())
        await expect_committed()

    async def rewind() -> None:
        """After a dropped batch, start again from the last commit, seeking there ourselves:
        its records were admitted already, and would otherwise come again only if a
        rebalance sought them back; a batch dropped while Faust finishes a rebalance (same
        generation) was then applied later, after newer records of its leads (seen in the
        scale-out test)."""
        await from_commit()
        await refetch(dict(guard.next))

    @app.agent(app.topic(*topics.channel_topics, topics.by_lead, **RAW), concurrency=1)
    async def pipeline_agent(stream: faust.StreamT[bytes]) -> None:
        """Every input record, in acceptance order per partition, landed in batches: a batch
        grows while more records are already waiting (up to `worker_batch_max`) and lands as
        soon as none is, so a busy worker shares acks and table writes across many records
        and an idle one adds no delay.

        Acks are manual, after the batch has landed, and only for records finished: one held
        for order or behind a merge stays unacknowledged (so uncommitted) until it is done.
        Not `Stream.take_events`: its background drainer lost runs of records after restarts
        with a backlog (seen in the kill test).
        """
        manual = cast(faust.Stream[bytes], stream).noack()  # not on StreamT's type
        waiting[:] = [cast(Any, stream.channel).queue]
        emits: list[Emit] = []
        at: dict[int, faust.types.EventT[Any]] = {}
        generation = app.consumer_generation_id  # of the batch being built
        async for event in manual.events():
            if not emits:
                generation = app.consumer_generation_id
            message = event.message
            verdict = guard.admit(message.tp, message.offset)
            if verdict is Verdict.REPEAT:
                await manual.ack(event)
                continue
            if verdict is Verdict.HOLE:
                faustfix.forget_delivery(app.consumer, message)
                await refetch(dict(guard.holes))
                continue
            partition = message.partition
            last_seen[partition] = time.monotonic()
            at[partition] = event
            if message.topic == topics.by_lead and message.key == WAKE_KEY:
                await manual.ack(event)
                faustfix.set_current_event(event)
                emits.append(pipeline.expire(partition))
            else:
                record = to_record(event)
                order.add(record.topic, partition, stamp(record), record)
            for ready in order.release(partition, functools.partial(caught_up_in, partition)):
                faustfix.set_current_event(ready.ref)  # tick_due writes happen while processing
                emits.append(pipeline.process(ready))
            if len(emits) < settings.worker_batch_max and not waiting[0].empty():
                continue
            if emits:
                if await land(emits, at, generation):
                    for emit in emits:
                        for done in emit.done:
                            if done.ref is not None:
                                await manual.ack(done.ref)
                elif not app.should_stop:
                    await rewind()
            emits, at = [], {}

    accounts = AccountStep(account_table, model)

    @app.agent(accounts_topic, concurrency=1)
    async def account_agent(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            emit, account = accounts.process(to_record(event))
            await send_all([emit])
            if account is not None:
                account_table[account.account_id.encode()] = account.encode()
                flusher.mark_account(account)

    @app.timer(1.0)  # type: ignore[untyped-decorator]
    async def idle_clock() -> None:
        """An idle partition's stream time follows the wall clock, so ticks fire without
        traffic. The clock travels as a record through the partition: tables may only be
        written while the agent processes that partition's records."""
        idle = settings.idle_tick_seconds
        if idle <= 0:
            return
        now = time.monotonic()
        for partition, seen in list(last_seen.items()):
            if now - seen >= idle:
                last_seen[partition] = now
                body = orjson.dumps({"control": "clock", "t": time.time() / 86400.0})
                await by_lead_topic.send(key=b"__clock__", value=body, partition=partition)

    @app.task  # type: ignore[untyped-decorator]
    async def task_dump() -> None:
        def loops() -> list[asyncio.AbstractEventLoop]:
            thread_loop = getattr(app.consumer._thread, "thread_loop", None)  # type: ignore[attr-defined]
            return [thread_loop] if thread_loop is not None else []

        def state() -> str:
            try:
                paused = sorted(map(str, client().paused()))
            except Exception as exc:  # noqa: BLE001 - not started, or in a rebalance
                paused = [repr(exc)]
            return repr(
                {
                    "rebalancing": app.rebalancing,
                    "flow_active": getattr(app.consumer, "flow_active", None),
                    "flow_control_active": app.flow_control.is_active(),
                    "assignment": sorted(map(str, app.consumer.assignment())),
                    "paused": paused,
                    "guard_next": {str(tp): n for tp, n in guard.next.items()},
                    "holes": {str(tp): n for tp, n in guard.holes.items()},
                    "queue": waiting[0].qsize() if waiting else None,
                    "held_for_order": sorted(order.waiting()),
                    "behind_merge": sorted(pipeline.waiting_since),
                    "faust_committed": {
                        str(tp): cast(Any, app.consumer)._committed_offset.get(tp)
                        for tp in guard.next
                    },
                    "faust_acked": {
                        str(tp): (min(a), max(a), len(a))
                        for tp, a in cast(Any, app.consumer)._acked.items()
                        if a
                    },
                }
            )

        install_task_dump(loops, state)

    @app.task  # type: ignore[untyped-decorator]
    async def export_lag() -> None:
        """Consumer lag as a metric, computed here so a plain Prometheus scrape shows it."""
        await export_lag_forever(
            settings.kafka_bootstrap,
            f"{settings.topic_prefix}leadstream-worker",
            [*topics.channel_topics, topics.by_lead],
            role="worker",
            prefix=settings.topic_prefix,
        )

    @app.timer(10.0)  # type: ignore[untyped-decorator]
    async def count_leads() -> None:
        """leadstream_worker_leads: the state table's size, outside a rebalance."""
        if not app.rebalancing:
            metrics.LEADS_IN_STATE.set(leads_held(states))

    async def on_rebalance(sender: Any, **kwargs: Any) -> None:
        """Faust seeks every partition back to its committed offset after a rebalance, so
        what this worker held (for order, or behind a merge) comes again: let it go."""
        await from_commit()

    app.on_rebalance_complete.connect(on_rebalance)  # type: ignore[arg-type]

    @app.task  # type: ignore[untyped-decorator]
    async def flush_redis() -> None:
        await flush_forever(flusher)

    # Our own metrics only: faust's Prometheus sensor cost ~10 % CPU per event and exports
    # per-partition series of its internals.
    @app.page("/metrics")
    async def metrics_page(view: Any, request: Any) -> Any:
        body = generate_latest(REGISTRY)
        return Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST}, status=200)

    @app.page("/healthz")
    async def healthz_page(view: Any, request: Any) -> Any:
        return health.alive(running=not app.should_stop)

    @app.page("/readyz")
    async def readyz_page(view: Any, request: Any) -> Any:
        """Ready once the group has assigned this worker its partitions and their tables are
        recovered: a worker that is rebalancing or replaying its changelogs scores nothing."""
        return health.readiness(
            running=not app.should_stop,
            assigned=not app.rebalancing,
            recovered=cast(Any, app.tables).recovery.completed.is_set() and not app.in_recovery,
        )

    return app


def faust_worker(app: faust.App, settings: Settings) -> Any:
    """Faust's Worker for one of our apps (the worker, the bench's P-faust).

    Without its terminal spinner: at log level warning and above Faust sets the root logger to
    DEBUG so the spinner turns with every record logged, and then every debug line of Faust and
    aiokafka is formatted and handled, several per record (~5 % of the worker's time).
    """
    from faust.worker import Worker

    # JSON logs: our logging config for Faust's and aiokafka's loggers too (Faust's Worker
    # would install its own text handler); text keeps Faust's own format.
    config = logs.dict_config(settings) if settings.log_format == "json" else None
    worker = Worker(app, loglevel=settings.log_level.upper(), quiet=True, logging_config=config)
    worker.spinner = None
    for name in ("_on_sigterm", "_on_sigint"):
        setattr(worker, name, bounded_stop(getattr(worker, name)))
    return worker


def run(settings: Settings) -> None:
    """Create topics, then run the worker until SIGTERM/SIGINT."""
    check_identity_secret(settings)
    data_dir = Path(settings.data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingsError(
            f"LEADSTREAM_DATA_DIR={settings.data_dir}: cannot create the worker's state "
            f"directory ({exc.strerror}); point it at a writable path"
        ) from None
    asyncio.run(ensure_topics(settings, compacted=changelogs(settings)))
    if settings.worker_input == "batch":
        from stream.worker.batch import run as run_batch

        run_batch(settings)
        return
    topics = Topics.from_settings(settings)
    group = worker_group(settings)
    inputs = [*topics.channel_topics, topics.by_lead, topics.accounts]
    asyncio.run(seed_group_offsets(settings.kafka_bootstrap, group, inputs))
    faust_worker(create_app(settings), settings).execute_from_commandline()
