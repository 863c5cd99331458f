"""`leadstream`: one console script; each command builds Settings and calls one run()."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import click

from stream.errors import LeadstreamError
from stream.settings import Settings, describe


def _settings(**flags: Any) -> Settings:
    try:
        settings = Settings.from_env(**{k: v for k, v in flags.items() if v is not None})
    except LeadstreamError as exc:
        raise click.ClickException(str(exc)) from None
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return settings


class _Group(click.Group):
    """Turns LeadstreamError into a one-line message and exit code 1, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LeadstreamError as exc:
            raise click.ClickException(str(exc)) from None


SETTINGS_HELP = "\n".join(
    f"  {name} (default {default}): {text}" for name, default, text in describe()
)


@click.group(
    cls=_Group,
    epilog="Settings come from LEADSTREAM_* environment variables; see `leadstream settings`.",
)
@click.version_option(package_name="leadstream")
def main() -> None:
    """leadstream: real-time lead scoring on Kafka."""


@main.command()
def settings() -> None:
    """List every setting, its environment variable, default and meaning."""
    for name, default, text in describe():
        click.echo(f"{name}\n    default {default}\n    {text}")


@main.command()
@click.option("--port", type=int, help="HTTP port (LEADSTREAM_COLLECTOR_PORT).")
@click.option("--host", help="Listen address (LEADSTREAM_COLLECTOR_HOST).")
def collector(port: int | None, host: str | None) -> None:
    """Run the HTTP collector: ingest on the public port; lead API and /metrics internal."""
    from stream.collector.app import run

    asyncio.run(run(_settings(collector_port=port, collector_host=host)))


@main.command()
@click.option("--data-dir", help="State directory (LEADSTREAM_DATA_DIR).")
@click.option("--model", "model_path", help="Scoring model file (LEADSTREAM_MODEL_PATH).")
def worker(data_dir: str | None, model_path: str | None) -> None:
    """Run the Faust scoring worker (identity, scoring, handoffs, Redis snapshots)."""
    from stream.worker.app import run

    run(_settings(data_dir=data_dir, model_path=model_path))


@main.command()
@click.option("--webhook-url", help="Where handoffs are delivered (LEADSTREAM_WEBHOOK_URL).")
def notifier(webhook_url: str | None) -> None:
    """Run the notifier: deliver handoffs to sales, signed, once."""
    from stream.notify.service import run

    asyncio.run(run(_settings(webhook_url=webhook_url)))


@main.group()
def dev() -> None:
    """Local Kafka (KRaft, from Maven Central) and Redis, without Docker."""


@dev.command("up")
def dev_up() -> None:
    """Start Kafka and Redis (running `up` twice is harmless)."""
    from stream.dev import DevEnvironment

    settings = _settings()
    env = DevEnvironment(settings)
    click.echo(f"starting Kafka {settings.kafka_version} and Redis in {settings.dev_path} …")
    env.up()
    status = env.status()
    click.echo(f"Kafka  {settings.kafka_bootstrap}   log {status.kafka_log}")
    click.echo(f"Redis  {settings.redis_url}   log {status.redis_log}")
    from stream.dev.credentials import FILE_NAME, dev_credentials

    dev_credentials(settings.dev_path)
    click.echo(f"development credentials in {settings.dev_path / FILE_NAME} (random, this machine)")
    click.echo('use them with: eval "$(leadstream dev env)"')
    click.echo("stop them with: leadstream dev down")


@dev.command("env")
def dev_env() -> None:
    """Print `export` lines of the development credentials (write keys, secrets, tokens)."""
    import shlex

    from stream.dev.credentials import dev_credentials

    settings = _settings()
    for name, value in dev_credentials(settings.dev_path).items():
        click.echo(f"export LEADSTREAM_{name.upper()}={shlex.quote(value)}")


@dev.command("down")
def dev_down() -> None:
    """Stop the Kafka and Redis that `dev up` started (nothing else)."""
    from stream.dev import DevEnvironment

    stopped = DevEnvironment(_settings()).down()
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing of ours was running")


@dev.command("status")
def dev_status() -> None:
    """Say whether the dev Kafka and Redis run and where they log."""
    from stream.dev import DevEnvironment

    settings = _settings()
    status = DevEnvironment(settings).status()
    click.echo(
        f"Kafka  {'running' if status.kafka_running else 'stopped'}  "
        f"{settings.kafka_bootstrap}  log {status.kafka_log}"
    )
    click.echo(
        f"Redis  {'running' if status.redis_running else 'stopped'}  "
        f"{settings.redis_url}  log {status.redis_log}"
    )
    sys.exit(0 if status.kafka_running and status.redis_running else 3)


@main.command()
@click.argument("events", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--model", "model_path", type=click.Path(exists=True, dir_okay=False), help="Model file."
)
@click.option("--until", help="Evaluate at this RFC 3339 time; later events are ignored.")
def replay(events: Path, model_path: str | None, until: str | None) -> None:
    """Score a JSON-lines file of canonical events offline, through the worker's engine."""
    from stream.scoring.replay import run_replay

    bad = run_replay(events, model_path, until, sys.stdout)
    if bad:
        click.echo(f"{bad} line(s) could not be scored; see the messages above", err=True)
        sys.exit(2)


@main.command()
@click.option("--leads", type=int, default=200, show_default=True, help="Leads to simulate.")
@click.option("--seed", type=int, default=7, show_default=True, help="Random seed (reproducible).")
@click.option("--url", help="Collector base URL (default from LEADSTREAM_COLLECTOR_HOST/PORT).")
def simulate(leads: int, seed: int, url: str | None) -> None:
    """Send realistic lead journeys to a running collector, in Segment's format."""
    from stream.demo import simulate_against
    from stream.dev.credentials import with_dev_credentials

    settings = with_dev_credentials(_settings())
    report = asyncio.run(simulate_against(settings, leads=leads, seed=seed, url=url))
    click.echo(report)


@main.command()
@click.option("--leads", type=int, default=200, show_default=True, help="Leads to simulate.")
@click.option("--keep", is_flag=True, help="Leave Kafka, Redis and the processes running.")
def demo(leads: int, keep: bool) -> None:
    """Start everything, simulate lead journeys, show who reached sales and why."""
    from stream.demo import run_demo

    sys.exit(run_demo(_settings(), leads=leads, keep=keep))


@main.group()
def deadletters() -> None:
    """Inspect dead letters and re-drive them after a fix."""


@deadletters.command("list")
@click.option(
    "--handoff", is_flag=True, help="The notifier's dead letters (leads.handoff.deadletter)."
)
@click.option("--reason", help="Only this reason (e.g. invalid_json, schema_violation).")
@click.option("--limit", type=int, default=100, show_default=True)
def deadletters_list(handoff: bool, reason: str | None, limit: int) -> None:
    """Print dead letters as JSON lines: reason, stage, error, where they came from, a preview."""
    import orjson

    from stream.deadletters import list_dead_letters

    rows = asyncio.run(list_dead_letters(_settings(), handoff=handoff, reason=reason, limit=limit))
    for row in rows:
        click.echo(orjson.dumps(row).decode())
    click.echo(f"{len(rows)} dead letter(s)", err=True)


@deadletters.command("redrive")
@click.option("--reason", help="Only dead letters with this reason.")
@click.option("--stage", help="Only dead letters from this stage (collector, identity, worker).")
@click.option("--dry-run", is_flag=True, help="Count what would be sent, send nothing.")
@click.option(
    "--handoff", is_flag=True, help="Re-drive the notifier's dead letters to leads.handoff."
)
def deadletters_redrive(
    reason: str | None, stage: str | None, dry_run: bool, handoff: bool
) -> None:
    """Send dead letters back to the topic they came from, once each."""
    from stream.deadletters import redrive

    counts = asyncio.run(
        redrive(_settings(), reason=reason, stage=stage, dry_run=dry_run, handoff=handoff)
    )
    click.echo(", ".join(f"{k} {v}" for k, v in counts.items()))


def _register_bench() -> None:
    from stream.bench.cli import bench

    main.add_command(bench)


_register_bench()
