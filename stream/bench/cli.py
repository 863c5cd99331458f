"""`leadstream bench`: one command, one report; the lead registers it with main.add_command."""

from __future__ import annotations

import asyncio
import functools
import logging
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson

from stream.bench.collector import collector_phase
from stream.bench.delivery import delivery_phase
from stream.bench.phases import Bench, Plan
from stream.bench.pipeline import pipeline_phase
from stream.bench.rebalance import rebalance_phase
from stream.bench.report import build, git_commit, machine, render
from stream.dev import DevEnvironment
from stream.dev.process import free_port
from stream.errors import LeadstreamError
from stream.settings import Settings

PHASES = (
    "pipeline",
    "b0",
    "pfaust",
    "worker",
    "latency",
    "collector",
    "delivery",
    "memory",
    "restart",
    "rebalance",
)
IN_PROCESS = frozenset({"pipeline"})  # phases that need no Kafka or Redis
REPO = Path(__file__).resolve().parents[2]
# (events, state leads, latency seconds, drain timeout, collector seconds per mode, delivery
# seconds): a full run takes a few minutes on 2 cores; --quick is what the test runs.
FULL = (200_000, 200_000, 25.0, 300.0, 15.0, 20.0)
QUICK = (12_000, 5_000, 8.0, 240.0, 3.0, 5.0)


@click.command()
@click.option("--events", type=int, help="Events in the drained file (200,000; quick 12,000).")
@click.option(
    "--leads", type=int, help="Distinct leads of the memory/restart state (full 200,000)."
)
@click.option("--quick", is_flag=True, help="Small sizes and short phases (what the tests run).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the report as JSON to this file.")  # fmt: skip
@click.option("--phases", default=",".join(PHASES), show_default=True,
              help="Comma-separated subset of the phases to run.")  # fmt: skip
@click.option("--bootstrap", help="Use this running Kafka instead of starting one.")
@click.option("--redis-url", help="Use this running Redis instead of starting one.")
@click.option("--keep-work", is_flag=True, help="Keep the work directory (logs, state, file).")
@click.option("--shadow-model", type=click.Path(exists=True, dir_okay=False),
              help="Score this candidate beside the live model (LEADSTREAM_SHADOW_MODEL) in "
                   "the pipeline and worker phases: what shadow scoring costs.")  # fmt: skip
def bench(
    events: int | None,
    leads: int | None,
    quick: bool,
    json_path: Path | None,
    phases: str,
    bootstrap: str | None,
    redis_url: str | None,
    keep_work: bool,
    shadow_model: str | None,
) -> None:
    """Measure B0, P-faust and the worker side by side, the collector's HTTP ingest and the
    event → delivered notification latency; print one report with targets."""
    wanted = [p.strip() for p in phases.split(",") if p.strip()]
    unknown = set(wanted) - set(PHASES)
    if unknown:
        want = ",".join(PHASES)
        raise click.BadParameter(f"{sorted(unknown)}: want some of {want}", param_hint="--phases")
    size = QUICK if quick else FULL
    n_events, n_leads = events or size[0], leads or size[1]
    work = Path(tempfile.mkdtemp(prefix="leadstream-bench-"))
    try:
        from stream.dev.credentials import with_dev_credentials

        # dev credentials (no defaults any more): the bench runs its own collector and receiver
        base = with_dev_credentials(
            Settings.from_env(log_level="warning", shadow_model=shadow_model)
        )
    except LeadstreamError as exc:
        raise click.ClickException(str(exc)) from None
    env = None
    servers = bool(set(wanted) - IN_PROCESS)
    if servers and (bootstrap is None or redis_url is None):
        base = base.replace(
            dev_dir=str(work / "dev"),
            kafka_bootstrap=bootstrap or f"127.0.0.1:{free_port()}",
            kafka_controller_port=free_port(),
            redis_url=redis_url or f"redis://127.0.0.1:{free_port()}/0",
        )
        env = DevEnvironment(base)
    elif servers:
        base = base.replace(kafka_bootstrap=bootstrap, redis_url=redis_url)
    plan = Plan(
        base,
        work,
        n_events,
        n_leads,
        max(1000, n_events // 3),
        size[2],
        # A drain must finish within this; at least 250 events/s (a busy shared machine
        # drained 200,000 events at ~450/s with P-faust and failed the fixed 300 s).
        max(size[3], n_events / 250.0),
        http_seconds=size[4],
        delivery_seconds=size[5],
    )
    header: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(REPO),
        "mode": "quick" if quick else "full",
        "machine": machine(
            base.kafka_version if bootstrap is None else "external broker",
        )
        if servers
        else machine("not started"),
        "events": n_events,
        "file_leads": plan.file_leads,
        "leads": n_leads,
        "partitions": base.partitions,
        "shadow_model": base.shadow_model or None,
        "errors": {},
    }
    # aiokafka logs a retried NotLeaderForPartition for every partition of a just-created
    # topic; the retry succeeds and the lines would bury the progress bars.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    try:
        _start(env, bootstrap is None, redis_url is None)
        results = asyncio.run(_run(Bench(plan), wanted, header["errors"]))
    finally:
        if env is not None:
            env.kafka.stop()
            env.redis.stop()
        if not keep_work and not header["errors"]:
            shutil.rmtree(work, ignore_errors=True)
    report = build(header, results, wanted)
    click.echo(render(report))
    if header["errors"]:
        click.echo(f"\nlogs and state kept in {work}", err=True)
    if json_path is not None:
        json_path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))


def _start(env: DevEnvironment | None, kafka: bool, redis: bool) -> None:
    """Start what was not given. The readiness checks of stream.dev find a server by a path
    in its command line or working directory, which a just-spawned child has not reached yet:
    `up()` covers that by its order; starting one server alone needs a moment's pause."""
    if env is None:
        return
    click.echo("starting Kafka and Redis for the benchmark …", err=True)
    if kafka and redis:
        env.up()
        return
    server = env.kafka if kafka else env.redis
    server.start()
    time.sleep(1.0)
    server.wait_ready()


async def _run(bench: Bench, wanted: list[str], errors: dict[str, str]) -> dict[str, Any]:
    """Phases in a fixed order (latency needs the worker's rate); a failed phase is reported
    and the others still run."""
    steps: list[tuple[str, Any]] = [
        ("pipeline", functools.partial(pipeline_phase, bench)),
        ("b0", bench.b0),
        ("pfaust", bench.pfaust),
        ("worker", bench.worker),
        ("latency", bench.latency),
        ("collector", functools.partial(collector_phase, bench)),
        ("delivery", functools.partial(delivery_phase, bench)),
        ("rebalance", functools.partial(rebalance_phase, bench)),
    ]
    for name, step in steps:
        if name in wanted:
            await _guard(name, step(), errors)
    if "memory" in wanted or "restart" in wanted:
        await _guard("memory+restart", bench.state("memory" in wanted, "restart" in wanted), errors)
    return bench.results


async def _guard(name: str, step: Any, errors: dict[str, str]) -> None:
    started = time.monotonic()
    click.echo(f"phase {name} …", err=True)
    try:
        await step
    except (LeadstreamError, click.ClickException, OSError, TimeoutError) as exc:
        message = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
        errors[name] = message or type(exc).__name__
        click.echo(f"phase {name} failed: {errors[name]}", err=True)
    else:
        click.echo(f"phase {name} done in {time.monotonic() - started:.0f}s", err=True)
