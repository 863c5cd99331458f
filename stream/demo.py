"""`leadstream demo`: the whole pipeline on simulated journeys, with a readable result."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import click

from stream.dev import DevEnvironment
from stream.dev.process import free_port
from stream.dev.receiver import WebhookReceiver
from stream.lag import group_lag
from stream.redact import redact_url
from stream.scoring.events import STAGES
from stream.settings import ENV_PREFIX, Settings
from stream.store.redis import LeadStore
from stream.topics import Topics, ensure_topics

if TYPE_CHECKING:  # the simulator is imported only when it runs
    from stream.simulate import Journey, SendReport

SALES_STAGES = ("mql", "sales_ready", "sql", "opportunity", "customer")


def settings_env(settings: Settings) -> dict[str, str]:
    """The LEADSTREAM_* environment that gives a child process exactly these settings."""
    env = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        env[ENV_PREFIX + f.name.upper()] = (
            str(value).lower() if isinstance(value, bool) else str(value)
        )
    return env


class Processes:
    """The collector, worker and notifier as child processes, each logging to its own file."""

    def __init__(self, settings: Settings, log_dir: Path):
        self.settings = settings
        self.log_dir = log_dir
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    def start(
        self, name: str, *args: str, command: str | None = None, settings: Settings | None = None
    ) -> None:
        """Start `leadstream <command or name> args` as `name`; `settings` overrides the
        common ones for this child (several workers need their own state dir and port)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{name}.log").open("ab")
        self.children[name] = subprocess.Popen(
            [sys.executable, "-m", "stream", command or name, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **settings_env(settings or self.settings)},
        )

    def check_alive(self) -> None:
        for name, proc in self.children.items():
            if proc.poll() is not None:
                raise click.ClickException(
                    f"the {name} exited with code {proc.returncode}; see {self.log_dir}/{name}.log"
                )

    def stop(self) -> None:
        for proc in self.children.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.children.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def wait_http(url: str, procs: Processes, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            procs.check_alive()
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    if resp.status == 200:
                        return
            except (TimeoutError, aiohttp.ClientError):
                pass
            await asyncio.sleep(0.3)
    raise click.ClickException(f"{url} did not answer within {timeout:.0f}s")


async def wait_drained(settings: Settings, procs: Processes, timeout: float = 180.0) -> None:
    """Until the worker and the notifier have committed everything, twice in a row."""
    topics = Topics.from_settings(settings)
    quiet = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        procs.check_alive()
        worker = await group_lag(
            settings.kafka_bootstrap,
            f"{settings.topic_prefix}leadstream-worker",
            [*topics.channel_topics, topics.by_lead],
        )
        notifier = await group_lag(
            settings.kafka_bootstrap,
            f"{settings.topic_prefix}leadstream-notifier",
            [topics.handoff],
        )
        quiet = quiet + 1 if sum(worker.values()) + sum(notifier.values()) == 0 else 0
        if quiet >= 3:
            return
        await asyncio.sleep(1.0)
    raise click.ClickException("the pipeline did not drain in time; see the process logs")


async def simulate_against(
    settings: Settings, *, leads: int, seed: int, url: str | None = None
) -> tuple[list[Journey], SendReport]:
    """Journeys of `leads` leads sent to the collector with the configured write keys."""
    from stream.simulate import build_journeys, send

    keys = settings.parsed_write_keys()
    browser = next((k for k, (_, kind) in keys.items() if kind == "browser"), None)
    server = next((k for k, (_, kind) in keys.items() if kind == "server"), None)
    if browser is None or server is None:
        raise click.ClickException(
            "simulate needs a browser and a server key in LEADSTREAM_WRITE_KEYS "
            '(development: `eval "$(leadstream dev env)"`)'
        )
    # 40 days back from today's midnight (UTC): the journeys sit at the same times of day on
    # every run, so daily ticks cut them the same way and one seed gives one result.
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=40)
    journeys = build_journeys(leads, seed, start)
    base = url or f"http://{settings.collector_host}:{settings.collector_port}"
    return journeys, await send(journeys, base, (browser, server))


def run_demo(base: Settings, *, leads: int, keep: bool) -> int:
    from stream.dev.credentials import with_dev_credentials

    base = with_dev_credentials(base)  # random per dev directory; never public defaults
    root = Path(".leadstream/demo").resolve()
    shutil.rmtree(root / "worker", ignore_errors=True)  # state of an earlier demo run
    return asyncio.run(_demo(base, root, leads=leads, keep=keep))


async def _demo(base: Settings, root: Path, *, leads: int, keep: bool) -> int:
    tag = f"demo{int(time.time())}"
    receiver = WebhookReceiver(base.webhook_secret.split()[0])
    receiver_port = free_port()
    settings = base.replace(
        topic_prefix=f"{tag}.",
        redis_prefix=f"{tag}:",
        data_dir=str(root / "worker"),
        webhook_url=f"http://127.0.0.1:{receiver_port}/hooks/sales",
        allow_private_urls=True,  # the demo's receiver listens on loopback
        idle_tick_seconds=0.0,
    )
    env = DevEnvironment(settings)
    click.secho("1/5 starting Kafka and Redis (first run resolves Kafka with Maven) …", bold=True)
    env.up()
    await ensure_topics(settings)
    click.echo(
        f"    Kafka {settings.kafka_bootstrap}, "
        f"Redis {redact_url(settings.redis_url, keep_path=True)}"
    )
    procs = Processes(settings, root / "logs")
    await receiver.start(receiver_port)
    try:
        click.secho("2/5 starting collector, worker and notifier …", bold=True)
        procs.start("collector")
        procs.start("worker")
        procs.start("notifier")
        host = settings.collector_host
        await wait_http(f"http://{host}:{settings.collector_port}/readyz", procs)
        await wait_http(f"http://{host}:{settings.worker_port}/metrics", procs, timeout=90)
        await wait_http(f"http://{host}:{settings.notifier_port}/healthz", procs)
        click.secho(f"3/5 simulating {leads} lead journeys through the collector …", bold=True)
        journeys, report = await simulate_against(settings, leads=leads, seed=7)
        click.echo(
            f"    {report.accepted} messages accepted in {report.requests} requests "
            f"({report.seconds:.1f}s), {report.failed} failed, {report.retries} retried"
        )
        click.secho(
            "4/5 waiting until every event is scored and every handoff delivered …", bold=True
        )
        await wait_drained(settings, procs)
        await asyncio.sleep(1.0)  # the worker flushes Redis every 200 ms
        click.secho("5/5 result", bold=True)
        await _report(settings, journeys, receiver)
    finally:
        await receiver.stop()
        if keep:
            click.echo(
                f"\nstill running (--keep): logs in {root / 'logs'}; stop the processes "
                "with Ctrl-C or kill, and Kafka/Redis with `leadstream dev down`"
            )
        else:
            procs.stop()
            env.down()
            click.echo(f"\nstopped the processes, Kafka and Redis; logs stay in {root / 'logs'}")
    return 0


async def _report(settings: Settings, journeys: list[Any], receiver: WebhookReceiver) -> None:
    persona = {j.user_id: j.persona for j in journeys}
    store = LeadStore.from_url(settings.redis_url, settings.redis_prefix)
    try:
        by_stage = {stage: await store.by_stage(stage, limit=100_000) for stage in STAGES}
    finally:
        await store.close()
    total = sum(len(v) for v in by_stage.values())
    click.echo(
        f"\nleads scored: {total}   handoffs delivered to the sales webhook: "
        f"{len(receiver.deliveries)} (signatures verified: {receiver.verified}, "
        f"rejected: {receiver.rejected}); sales transitions only: identifies and other "
        "marketing moves stay on the handoff topic (LEADSTREAM_NOTIFIER_HANDOFFS=all sends them)"
    )
    click.echo("leads by stage: " + ", ".join(f"{s} {len(v)}" for s, v in by_stage.items() if v))
    reached: Counter[str] = Counter()
    for stage in SALES_STAGES:
        for lead in by_stage[stage]:
            reached[persona.get(lead["lead_id"], "?")] += 1
    click.echo(
        "reached sales stages, by persona: "
        + (", ".join(f"{p} {n}" for p, n in reached.most_common()) or "none")
    )
    for bad in ("student", "job_seeker"):
        click.echo(
            f"  {bad}s handed to sales: {reached.get(bad, 0)}"
            + ("  ✓" if reached.get(bad, 0) == 0 else "  ✗ check the model")
        )
    to_sales = [d for d in receiver.deliveries if d["to_stage"] in SALES_STAGES]
    by_reason: dict[str, list[dict[str, Any]]] = {}
    for data in sorted(to_sales, key=lambda d: (d["lead_id"], d["seq"])):
        by_reason.setdefault(data["reason"], []).append(data)
    click.echo(
        f"\nhandoffs into sales stages: {len(to_sales)} ("
        + ", ".join(f"{reason} {len(items)}" for reason, items in by_reason.items())
        + ") — a few of each, and why:"
    )
    for data in [d for items in by_reason.values() for d in items[:4]]:
        why = ", ".join(
            f"{c['type']} {c['value']:.1f}" for c in data.get("top_contributors", [])[:3]
        )
        route = data.get("route") or {}
        click.echo(
            f"  {data['lead_id']:<14} {persona.get(data['lead_id'], '?'):<15} "
            f"{data['from_stage']:>9} → {data['to_stage']:<11} {data['reason']:<9} "
            f"fit {data['fit']['score']:>5.1f} ({data['fit']['grade']})  "
            f"eng {data['engagement']['score']:>5.1f}  "
            f"{route.get('queue') or '-'}/{route.get('priority') or '-'}  because: {why or '-'}"
        )
    host = settings.collector_host
    example = to_sales[0]["lead_id"] if to_sales else "<lead_id>"
    click.echo("\nwhere to look next:")
    click.echo(
        f"  lead API     http://{settings.collector_internal_host}:"
        f"{settings.collector_internal_port}/v1/leads/{example}"
        f"  (and /ledger, /v1/leads?stage=mql) — while running with --keep; token in "
        f"{settings.dev_path}/credentials.env"
    )
    click.echo(
        f"  metrics      collector http://{host}:{settings.collector_internal_port}/metrics, "
        f"worker http://{host}:{settings.worker_port}/metrics, "
        f"notifier http://{host}:{settings.notifier_port}/metrics"
    )
    click.echo("  offline      leadstream replay EVENTS.jsonl   (same engine, same answers)")
