"""The notifier process: `Notifier` (start/stop, for tests) and `run(settings)` (the command)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stream import health
from stream.errors import SettingsError
from stream.lag import export_lag_forever
from stream.metrics import start_notifier_at_zero
from stream.notify import NotifierConfig
from stream.notify.consumer import HandoffConsumer
from stream.notify.deliverylog import DeliveryLog
from stream.notify.dispatch import Dispatcher
from stream.notify.idempotency import Idempotency
from stream.notify.parked import ParkingLot
from stream.notify.routes import Routes
from stream.notify.scheduler import Scheduler
from stream.notify.sinks import LogSink, Sink
from stream.notify.sinks.crm import CrmTaskSink
from stream.notify.sinks.slack import SlackSink
from stream.notify.sinks.smtp import SmtpSink
from stream.notify.sinks.webhook import WebhookSink
from stream.notify.ssrf import resolve_checked
from stream.notify.startup import wait_until_served
from stream.settings import Settings
from stream.topics import Topics, ensure_topics

log = logging.getLogger(__name__)


def build_sinks(config: NotifierConfig, names: frozenset[str]) -> dict[str, Sink]:
    """The sinks the routes name; a routed sink that is not configured is a startup error."""
    common: dict[str, Any] = {
        "timeout": config.timeout_seconds,
        "allow_private": config.allow_private_urls,
    }
    link = config.lead_link_template
    sinks: dict[str, Sink] = {}
    for name in sorted(names):
        if name == "log":
            sinks[name] = LogSink()
        elif name == "webhook":
            _need(config.webhook_url, "webhook", "LEADSTREAM_WEBHOOK_URL")
            sinks[name] = WebhookSink(config.webhook_url, config.webhook_secrets, **common)
        elif name == "slack":
            _need(config.slack_webhook_url, "slack", "LEADSTREAM_SLACK_WEBHOOK_URL")
            sinks[name] = SlackSink(config.slack_webhook_url, link_template=link, **common)
        elif name == "crm":
            _need(config.crm_task_url, "crm", "LEADSTREAM_CRM_TASK_URL")
            sinks[name] = CrmTaskSink(
                config.crm_task_url, token=config.crm_token, link_template=link, **common
            )
        elif name == "email":
            _need(config.smtp_host, "email", "LEADSTREAM_SMTP_HOST")
            _need(",".join(config.smtp_to), "email", "LEADSTREAM_SMTP_TO")
            sinks[name] = SmtpSink(
                config.smtp_host,
                config.smtp_port,
                sender=config.smtp_from,
                recipients=config.smtp_to,
                timeout=config.timeout_seconds,
                username=config.smtp_username,
                password=config.smtp_password,
                starttls=config.smtp_starttls,
                link_template=link,
            )
    return sinks


def _need(value: str, sink: str, variable: str) -> None:
    if not value:
        raise SettingsError(f"routes send to {sink!r} but {variable} is empty: set it or re-route")


async def check_urls(sinks: Mapping[str, Sink], *, allow_private: bool) -> None:
    """Startup SSRF check: every HTTP sink's host must resolve to allowed addresses.

    An unsafe URL stops the process; a name that does not resolve yet only warns (DNS may be
    late at boot), since every connection is checked again anyway.
    """
    for sink in sinks.values():
        url = getattr(sink, "url", None)
        if isinstance(url, str):
            try:
                await resolve_checked(url, allow_private=allow_private)
            except OSError as exc:
                log.warning("sink %s: host does not resolve yet (%s)", sink.name, exc)


class Notifier:
    """Consumes the handoff topic and delivers; `async with Notifier(settings)` in tests."""

    def __init__(
        self,
        settings: Settings,
        config: NotifierConfig | None = None,
        *,
        routes: Routes | None = None,
        sinks: Mapping[str, Sink] | None = None,
        redis: Any = None,
    ) -> None:
        self.settings = settings
        self.config = config or NotifierConfig.from_settings(settings)
        self.topics = Topics.from_settings(settings)
        self.routes = routes or Routes.load(
            self.config.routes_path, webhook_url=self.config.webhook_url, sinks=self.config.sinks
        )
        self.sinks = (
            dict(sinks) if sinks is not None else build_sinks(self.config, self.routes.sink_names)
        )
        missing = self.routes.sink_names - set(self.sinks)
        if missing:
            raise SettingsError(f"routes name sinks {sorted(missing)} that are not configured")
        self._redis = redis
        self._own_redis = redis is None
        self._producer: AIOKafkaProducer | None = None
        self._consumer: HandoffConsumer | None = None
        self._scheduler: Scheduler | None = None
        self._lag_task: asyncio.Task[None] | None = None

    @property
    def redis(self) -> Any:
        return self._redis

    async def start(self) -> None:
        await check_urls(self.sinks, allow_private=self.config.allow_private_urls)
        start_notifier_at_zero(self.sinks)
        partitions = self.topics.all()
        await wait_until_served(
            self.settings.kafka_bootstrap,
            {t: partitions[t] for t in (self.topics.handoff, self.topics.handoff_deadletter)},
            self.config.group_id,
        )
        if self._redis is None:
            self._redis = aioredis.from_url(self.settings.redis_url)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            acks="all",
            enable_idempotence=True,
            client_id="leadstream-notifier",
        )
        await self._producer.start()
        for sink in self.sinks.values():
            await sink.start()
        config = self.config
        parking = ParkingLot(self._redis, config.redis_prefix)
        dispatcher = Dispatcher(
            config=config,
            sinks=self.sinks,
            routes=self.routes,
            idempotency=Idempotency(
                self._redis,
                config.redis_prefix,
                delivered_ttl_seconds=config.delivered_ttl_seconds,
                claim_ttl_seconds=max(config.claim_ttl_seconds, config.timeout_seconds + 5.0),
            ),
            deliverylog=DeliveryLog(
                self._redis, config.redis_prefix, size=config.delivery_log_size
            ),
            parking=parking,
            producer=self._producer,
            deadletter_topic=self.topics.handoff_deadletter,
        )
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=config.group_id,
            client_id="leadstream-notifier",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        self._consumer = HandoffConsumer(
            consumer=consumer, topic=self.topics.handoff, dispatcher=dispatcher, config=config
        )
        await self._consumer.start()
        self._scheduler = Scheduler(
            config=config, dispatcher=dispatcher, parking=parking, sinks=self.sinks
        )
        await self._scheduler.start()
        self._lag_task = asyncio.create_task(
            export_lag_forever(
                self.settings.kafka_bootstrap,
                config.group_id,
                [self.topics.handoff],
                role="notifier",
                prefix=self.settings.topic_prefix,
                interval=config.lag_interval_seconds,
            ),
            name="notifier-lag",
        )
        log.info("notifier started: sinks=%s", ",".join(sorted(self.sinks)))
        if set(self.sinks) <= {"log"}:
            log.warning(
                "notifier delivers to the log only: the handoffs of group %s are settled "
                "without reaching sales (set LEADSTREAM_WEBHOOK_URL or a routes file to deliver)",
                config.group_id,
            )

    async def stop(self, grace: float | None = None) -> None:
        """Let running deliveries finish (up to `grace`), commit what settled, close all."""
        if self._lag_task is not None:
            # A lag round caught mid-connect can take long to unwind: never let a metric
            # hold up shutdown (a stuck round is abandoned; the process is ending anyway).
            self._lag_task.cancel()
            await asyncio.wait([self._lag_task], timeout=3.0)
            self._lag_task = None
        if self._scheduler is not None:
            await self._scheduler.stop(self.config.timeout_seconds if grace is None else grace)
            self._scheduler = None
        if self._consumer is not None:
            await self._consumer.stop(grace)
            self._consumer = None
        for sink in self.sinks.values():
            with contextlib.suppress(Exception):
                await sink.close()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        if self._own_redis and self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    @property
    def healthy(self) -> bool:
        return (
            self._consumer is not None
            and self._consumer.healthy
            and self._scheduler is not None
            and self._scheduler.healthy
        )

    @property
    def joined(self) -> bool:
        """The consumer has joined its group (it may own no partition: more notifiers than
        partitions)."""
        return self._consumer is not None and self._consumer.joined

    async def __aenter__(self) -> Notifier:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def metrics_app(notifier: Notifier) -> web.Application:
    """/metrics for Prometheus; /healthz and /readyz (stream/health.py): alive while the fetch,
    commit, lane and schedule tasks run, ready once the consumer has joined its group as well."""

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"content-type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return health.alive(tasks=notifier.healthy)

    async def readyz(_: web.Request) -> web.Response:
        return health.readiness(tasks=notifier.healthy, consumer=notifier.joined)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def run(settings: Settings, config: NotifierConfig | None = None) -> None:
    """The `leadstream notifier` command: serve until SIGTERM or SIGINT, then stop cleanly."""
    config = config or NotifierConfig.from_settings(settings)
    notifier = Notifier(settings, config)  # refuses a bad setup before touching Kafka
    await ensure_topics(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await notifier.start()
    runner = web.AppRunner(metrics_app(notifier), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, config.metrics_host, settings.notifier_port).start()
    log.info("notifier serving /metrics on %s:%s", config.metrics_host, settings.notifier_port)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await notifier.stop()
        await runner.cleanup()
