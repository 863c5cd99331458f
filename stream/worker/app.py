"""The Faust app: two agents, two RocksDB tables, a Redis flusher. Built from Settings only.

Agents run with `concurrency=1`: with more, faust-streaming can commit an offset past a record
that is still being processed and lose it after a crash (faust issue #606). We scale out with
partitions and worker processes instead. Exactly-once comes from idempotent state (a per-lead
offset watermark and event-id dedupe inside each lead's state), not from Faust's experimental
transactions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust
import orjson
from aiohttp.web import Response
from aiokafka.errors import KafkaError
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from stream.lag import export_lag_forever
from stream.scoring import AccountState, LeadState, Model, load_model
from stream.scoring.account import account_engagement
from stream.settings import Settings
from stream.store.redis import LeadStore
from stream.topics import Topics, ensure_topics
from stream.worker import faustfix
from stream.worker.processor import AccountStep, Emit, IdentityStep, Record, ScoringStep
from stream.worker.ticks import TickScheduler

log = logging.getLogger("leadstream.worker")
RAW: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}


class RedisFlusher:
    """Coalesces snapshot writes: a lead scored 50 times in 200 ms is written once."""

    def __init__(self, settings: Settings, scoring: ScoringStep):
        self.settings = settings
        self.scoring = scoring
        self.dirty: dict[str, LeadState] = {}
        self.ledgers: dict[str, list[dict[str, Any]]] = {}
        self.absorbed: list[tuple[str, str]] = []
        self.dirty_accounts: dict[str, AccountState] = {}
        self.store: LeadStore | None = None

    def mark(self, lead_id: str, state: LeadState) -> None:
        self.dirty[lead_id] = state

    def mark_account(self, account: AccountState) -> None:
        self.dirty_accounts[account.account_id] = account

    def absorb(self, visitor_id: str, lead_id: str) -> None:
        """The visitor's snapshot goes, its ledger joins the lead's (after the next flush)."""
        self.dirty.pop(visitor_id, None)
        self.absorbed.append((visitor_id, lead_id))

    def add_ledger(self, lead_id: str, entries: list[dict[str, Any]]) -> None:
        self.ledgers.setdefault(lead_id, []).extend(entries)

    async def flush(self) -> None:
        if not self.dirty and not self.ledgers and not self.absorbed and not self.dirty_accounts:
            return
        if self.store is None:
            self.store = LeadStore.from_url(self.settings.redis_url, self.settings.redis_prefix)
        dirty, self.dirty = self.dirty, {}
        ledgers, self.ledgers = self.ledgers, {}
        absorbed, self.absorbed = self.absorbed, []
        accounts, self.dirty_accounts = self.dirty_accounts, {}
        snaps = [self.scoring.snapshot(state) for state in dirty.values()]
        model = self.scoring.model
        account_snaps = [
            {
                "account_id": a.account_id,
                "mqa": a.mqa,
                "engagement": account_engagement(a, model),
                "fit": a.fit,
                "contacts": a.contacts,
            }
            for a in accounts.values()
        ]
        try:
            await self.store.write(snaps, {k: v[::-1] for k, v in ledgers.items()})
            await self.store.write_accounts(account_snaps)
            for visitor_id, lead_id in absorbed:
                await self.store.absorb(visitor_id, lead_id)
        except Exception as exc:  # noqa: BLE001 - Redis down must not stop scoring
            log.warning("Redis write failed (%s); will retry with the next flush", exc)
            for lead_id, state in dirty.items():
                self.dirty.setdefault(lead_id, state)
            for lead_id, entries in ledgers.items():
                self.ledgers.setdefault(lead_id, [])[:0] = entries
            self.absorbed[:0] = absorbed
            for account_id, account in accounts.items():
                self.dirty_accounts.setdefault(account_id, account)


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
        # A killed worker's partitions are reassigned once its session times out: 10 s
        # instead of Faust's 60 s keeps a restart after SIGKILL quick.
        "broker_session_timeout": 10.0,
        "broker_heartbeat_interval": 3.0,
        "rocksdb_options": rocksdb_options(settings),
    }


def create_app(settings: Settings, model: Model | None = None) -> faust.App:
    faustfix.install()
    model = model or load_model(settings.model_path or None)
    topics = Topics.from_settings(settings)
    app = faust.App(
        f"{settings.topic_prefix}leadstream-worker",
        producer_linger=0.005,
        **faust_options(settings),
    )
    channel_topic = app.topic(*topics.channel_topics, **RAW)
    crm_topic = app.topic(topics.events("crm"), **RAW)
    by_lead_topic = app.topic(topics.by_lead, partitions=settings.partitions, **RAW)
    handoff_topic = app.topic(topics.handoff, **RAW)
    ledger_topic = app.topic(topics.ledger, **RAW)
    deadletter_topic = app.topic(topics.deadletter, partitions=1, **RAW)
    # Tables pick their codec from key_type/value_type: bytes is raw, anything else JSON.
    # Changelogs stay compacted-only (faust's default for tables): a changelog emptied by
    # retention can hang recovery forever (faust #597, #651).
    parts = settings.partitions
    aliases = app.Table("aliases", key_type=str, value_type=str, partitions=parts)
    states = app.Table("lead_state", key_type=bytes, value_type=bytes, partitions=parts)
    tick_due = app.Table("tick_due", key_type=str, value_type=str, partitions=parts)
    account_table = app.Table("accounts", key_type=bytes, value_type=bytes, partitions=parts)
    accounts_topic = app.topic(topics.accounts, partitions=parts, **RAW)
    account_events_topic = app.topic(topics.account_events, **RAW)

    identity = IdentityStep(aliases)
    ticks = TickScheduler(tick_due)
    flusher: RedisFlusher
    scoring = ScoringStep(states, model, ticks, lambda lead_id, state: flusher.mark(lead_id, state))
    flusher = RedisFlusher(settings, scoring)

    async def send(emit: Emit) -> None:
        """Produce an emit, trying again until Kafka takes it all.

        An exception escaping the agent would ack the record and lose it, so a failed send
        waits and repeats the whole emit: handoffs repeat with the same ce_id, by-lead events
        are no-ops the second time, so repeating is safe.
        """
        delay = 0.5
        while True:
            try:
                return await _send(emit)
            except KafkaError as exc:
                log.warning("producing failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _send(emit: Emit) -> None:
        waits = []
        for key, value, headers in emit.handoffs:
            waits.append(await handoff_topic.send(key=key, value=value, headers=headers))
        for key, value, headers in emit.by_lead:
            waits.append(await by_lead_topic.send(key=key, value=value, headers=headers))
        for _channel, key, value in emit.channel:  # only identity.alias controls, to crm
            waits.append(await crm_topic.send(key=key, value=value))
        for dl_key, dl_value, dl_headers in emit.deadletters:
            waits.append(
                await deadletter_topic.send(key=dl_key, value=dl_value, headers=dl_headers)
            )
        for key, value in emit.ledger:
            await ledger_topic.send(key=key, value=value)
        for key, value in emit.accounts:
            await accounts_topic.send(key=key, value=value)
        for key, value, headers in emit.account_events:
            await account_events_topic.send(key=key, value=value, headers=headers)
        if emit.must_land_first:
            for fut in waits:
                await fut

    def to_record(event: faust.types.EventT[Any]) -> Record:
        m = event.message
        raw: Any = m.headers.items() if isinstance(m.headers, dict) else (m.headers or [])
        headers = [(str(k), v if isinstance(v, bytes) else str(v).encode()) for k, v in raw]
        return Record(m.topic, m.partition, m.offset, m.key, m.value or b"", headers)

    @app.agent(channel_topic, concurrency=1)
    async def identity_agent(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            emit = identity.process(to_record(event))
            await send(emit)
            for alias_key, lead_id in emit.aliases.items():
                aliases[alias_key] = lead_id

    @app.agent(by_lead_topic, concurrency=1)
    async def scoring_agent(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            record = to_record(event)
            last_seen[record.partition] = time.monotonic()
            emit = scoring.process(record)
            await send(emit)
            for entry_key, entry in emit.ledger:
                flusher.add_ledger(entry_key.decode(), [orjson.loads(entry)])
            if emit.forget is not None:
                visitor_id, lead_id = emit.forget
                states.pop(visitor_id.encode(), None)
                flusher.absorb(visitor_id, lead_id)
            for lead_id, state in emit.states.items():
                states[lead_id.encode()] = state.encode()

    accounts = AccountStep(account_table, model)

    @app.agent(accounts_topic, concurrency=1)
    async def account_agent(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            emit, account = accounts.process(to_record(event))
            await send(emit)
            if account is not None:
                account_table[account.account_id.encode()] = account.encode()
                flusher.mark_account(account)

    last_seen: dict[int, float] = {}

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
    async def export_lag() -> None:
        """Consumer lag as a metric, computed here so a plain Prometheus scrape shows it."""
        await export_lag_forever(
            settings.kafka_bootstrap,
            f"{settings.topic_prefix}leadstream-worker",
            [*topics.channel_topics, topics.by_lead],
            role="worker",
            prefix=settings.topic_prefix,
        )

    async def on_rebalance(sender: Any, **kwargs: Any) -> None:
        ticks.forget_partitions()

    app.on_rebalance_complete.connect(on_rebalance)  # type: ignore[arg-type]

    @app.timer(0.2)  # type: ignore[untyped-decorator]
    async def flush_redis() -> None:
        await flusher.flush()

    # Our own metrics only: faust's Prometheus sensor cost ~10 % CPU per event and exports
    # per-partition series of its internals.
    @app.page("/metrics")
    async def metrics_page(view: Any, request: Any) -> Any:
        body = generate_latest(REGISTRY)
        return Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST}, status=200)

    return app


def run(settings: Settings) -> None:
    """Create topics, then run the worker until SIGTERM/SIGINT."""
    from faust.worker import Worker

    asyncio.run(ensure_topics(settings))
    app = create_app(settings)
    worker = Worker(app, loglevel=settings.log_level.upper(), quiet=True)
    worker.execute_from_commandline()
