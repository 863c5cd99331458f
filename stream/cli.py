"""`leadstream`: one console script; each command builds Settings and calls one run()."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import click

from stream import logs
from stream.errors import LeadstreamError
from stream.redact import redact_url
from stream.settings import ENV_PREFIX, PROCESSES, Settings, check_environment, describe


def _settings(**flags: Any) -> Settings:
    try:
        settings = Settings.from_env(**{k: v for k, v in flags.items() if v is not None})
    except LeadstreamError as exc:
        raise click.ClickException(str(exc)) from None
    logs.configure(settings)
    return settings


class _Group(click.Group):
    """Turns LeadstreamError into a one-line message and exit code 1, not a traceback.

    Commands in `LAZY` are imported only when named (or listed by --help): the bench pulls in
    the dev environment, report builders and plots, which no process start should pay for.
    """

    LAZY: ClassVar[dict[str, tuple[str, str]]] = {"bench": ("stream.bench.cli", "bench")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.LAZY])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.LAZY:
            module, name = self.LAZY[cmd_name]
            command = getattr(importlib.import_module(module), name)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)

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
@click.option(
    "--check",
    is_flag=True,
    help="Check this environment's LEADSTREAM_* values instead; exit 1 naming each bad one.",
)
@click.option(
    "--for",
    "processes",
    multiple=True,
    type=click.Choice(PROCESSES),
    help="With --check: also what this process refuses at startup (credentials, mapping, "
    "model, sinks), by the process's own checks; repeatable.",
)
def settings(check: bool, processes: tuple[str, ...]) -> None:
    """List every setting, its environment variable, default and meaning."""
    if not check:
        if processes:
            raise click.UsageError("--for goes with --check")
        for name, default, text in describe():
            click.echo(f"{name}\n    default {default}\n    {text}")
        return
    problems = check_environment(os.environ)
    if not problems:  # each process's startup checks need the values parsed
        parsed = Settings.from_env(os.environ)
        for process in dict.fromkeys(processes):
            try:
                parsed.check_for(process)
            except LeadstreamError as exc:
                problems.append(f"{process}: {exc}")
    for problem in problems:
        click.echo(f"bad: {problem}", err=True)
    if problems:
        click.echo(f"{len(problems)} problem(s); `leadstream settings` lists them all", err=True)
        sys.exit(1)
    given = sorted(k for k in os.environ if k.startswith(ENV_PREFIX))
    counted = f"{len(given)} LEADSTREAM_* variable(s) set, the rest default"
    if processes:
        click.echo(f"settings OK for the {', '.join(dict.fromkeys(processes))} ({counted})")
    else:
        click.echo(
            f"values OK ({counted}); not checked: what a process needs to start (credentials, "
            f"mapping, model, sinks): add --for {'|'.join(PROCESSES)}"
        )


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
    """Run the scoring worker (identity, scoring, handoffs, Redis snapshots)."""
    from stream.worker.app import run

    run(_settings(data_dir=data_dir, model_path=model_path))


@main.command()
@click.option("--webhook-url", help="Where handoffs are delivered (LEADSTREAM_WEBHOOK_URL).")
@click.option(
    "--sinks",
    help="Sinks of every handoff without a routes file, e.g. `log` to run without a sales sink "
    "on purpose (LEADSTREAM_NOTIFIER_SINKS).",
)
def notifier(webhook_url: str | None, sinks: str | None) -> None:
    """Run the notifier: deliver handoffs to sales, signed, once."""
    from stream.notify.service import run

    asyncio.run(run(_settings(webhook_url=webhook_url, notifier_sinks=sinks)))


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
    click.echo(f"Redis  {redact_url(settings.redis_url, keep_path=True)}   log {status.redis_log}")
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
        f"{redact_url(settings.redis_url, keep_path=True)}  log {status.redis_log}"
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
    from stream.pipeline.replay import run_replay

    secret = Settings.from_env().identity_secret  # email visitors' ids as the worker makes them
    bad = run_replay(events, model_path, until, sys.stdout, secret=secret)
    if bad:
        click.echo(f"{bad} line(s) could not be scored; see the messages above", err=True)
        sys.exit(2)


FROM_TOPIC_HELP = (
    "Read history from this Kafka topic too (repeatable; 'channels' = every channel topic "
    "with LEADSTREAM_TOPIC_PREFIX), from its beginning to its current end. whatif only: "
    "'leads.shadow' compares the live model's handoffs with its shadow's transitions "
    "(LEADSTREAM_SHADOW_MODEL; --candidate names the shadow's model file), no replay."
)


SKIP_BAD_LINES_HELP = (
    "Report on the lines that can be read, leaving out bad ones (counted, and the first named "
    "in the report). Without it a bad line stops the report with exit code 2, naming it."
)
NO_REPORT = (
    "2 no report: a bad history (its bad lines named), model, option or output path; "
    "3 an internal error (a bug: please report it)."
)
WHATIF_EXIT_CODES = (
    "Exit codes: 0 the report is written and --fail-if does not hold (or none is given); "
    "1 --fail-if holds (the report is written too); " + NO_REPORT
)
REVIEW_EXIT_CODES = "Exit codes: 0 the report is written; " + NO_REPORT


def history_options(command: Callable[..., None]) -> Callable[..., None]:
    """Where a report's history comes from: JSON-lines files and/or Kafka topics."""
    command = click.option("--skip-bad-lines", is_flag=True, help=SKIP_BAD_LINES_HELP)(command)
    command = click.option("--from-topic", "topics", multiple=True, help=FROM_TOPIC_HELP)(command)
    return click.argument("events", nargs=-1)(command)


JOBS_HELP = "Worker processes for the replays [default: the CPUs this process may use]."


def _jobs(jobs: int | None) -> int:
    from stream.reports.pool import default_jobs

    if jobs is not None and jobs < 1:
        raise click.BadParameter(f"{jobs}: want 1 or more", param_hint="--jobs")
    return jobs or default_jobs()


def _report(name: str, make: Callable[[], Any]) -> Any:
    """Run a report command: a report that cannot be made exits 2 with the reason (exit 1
    belongs to --fail-if alone, so CI can tell a failed gate from bad input); a crash exits 3
    with its traceback."""
    try:
        return make()
    except LeadstreamError as exc:  # ReportError, ModelError, SettingsError …
        click.echo(f"{name}: {exc}", err=True)
        sys.exit(2)
    except click.ClickException as exc:  # a bad LEADSTREAM_* value (_settings)
        click.echo(f"{name}: {exc.format_message()}", err=True)
        sys.exit(2)
    except Exception:  # noqa: BLE001 - a bug must not look like a failed gate
        import traceback

        traceback.print_exc()
        click.echo(
            f"{name}: internal error (a bug: please report it with the trace above)", err=True
        )
        sys.exit(3)


def _echo_skipped(name: str, skipped: tuple[tuple[str, str], ...]) -> None:
    if skipped:
        first = "; ".join(f"{where}: {message}" for where, message in skipped[:3])
        more = f"; … and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        click.echo(
            f"{name}: left out {len(skipped)} bad line(s) (--skip-bad-lines): {first}{more}",
            err=True,
        )


def report_outputs(default_out: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A report's --out (HTML) and --json (summary) options."""

    def add(command: Callable[..., None]) -> Callable[..., None]:
        command = click.option(
            "--json",
            "json_out",
            type=click.Path(dir_okay=False, path_type=Path),
            help="JSON summary.",
        )(command)
        return click.option(
            "--out",
            type=click.Path(dir_okay=False, path_type=Path),
            default=default_out,
            show_default=True,
            help="Self-contained HTML report.",
        )(command)

    return add


@main.command(epilog=WHATIF_EXIT_CODES)
@history_options
@click.option(
    "--baseline",
    "baseline_path",
    help="The model in production (default LEADSTREAM_MODEL_PATH, else the packaged model).",
)
@click.option("--candidate", "candidate_path", required=True, help="The edited model file to try.")
@report_outputs("whatif.html")
@click.option(
    "--fail-if",
    help="Exit 1 when this holds, e.g. 'mql_change_pct > 20' (names: see the JSON's metrics).",
)
@click.option("--until", help="Ignore events after this RFC 3339 time.")
@click.option("--jobs", type=int, help=JOBS_HELP)
def whatif(
    events: tuple[str, ...],
    topics: tuple[str, ...],
    baseline_path: str | None,
    candidate_path: str,
    out: Path,
    json_out: Path | None,
    fail_if: str | None,
    until: str | None,
    skip_bad_lines: bool,
    jobs: int | None,
) -> None:
    """Replay history (EVENTS.jsonl files, - for stdin) under two models, side by side."""
    from stream.reports.commands import run_whatif

    settings = _report("whatif", _settings)
    baseline_path = baseline_path or settings.model_path or None
    result = _report(
        "whatif",
        lambda: run_whatif(
            baseline_path,
            candidate_path,
            events,
            out,
            json_out,
            fail_if,
            until,
            topics=topics,
            settings=settings,
            skip_bad_lines=skip_bad_lines,
            jobs=_jobs(jobs),
            progress=None,
        ),
    )
    _echo_skipped("whatif", result.skipped)
    m = result.summary["metrics"]
    click.echo(
        f"whatif: MQLs {m['baseline_mqls']} → {m['candidate_mqls']} "
        f"({m['mql_change_pct'] if m['mql_change_pct'] is not None else 'n/a'} %), "
        f"handoffs {m['baseline_handoffs']} → {m['candidate_handoffs']}, "
        f"{m['leads_changed']} of {m['leads']} leads on another path; "
        f"{result.summary['history']['events']} events in {result.seconds:.1f}s; report {out}"
    )
    if result.failed:
        click.echo(f"whatif: --fail-if {result.failed} holds", err=True)
        sys.exit(1)


@main.command(epilog=REVIEW_EXIT_CODES)
@history_options
@click.option(
    "--model",
    "model_path",
    help="The model that made the handoffs (default LEADSTREAM_MODEL_PATH, else packaged).",
)
@report_outputs("review.html")
@click.option(
    "--objective",
    default="f1",
    show_default=True,
    help="What the suggested threshold aims at: f1, acceptance:RATE or recall:RATE.",
)
@click.option(
    "--target",
    type=click.Choice(["accepted", "opportunity"]),
    default="accepted",
    show_default=True,
    help="The outcome that makes a lead good.",
)
@click.option("--grid", help="Thresholds to try, FROM:TO:STEP (default 20:80:5, then by 1).")
@click.option("--band-width", type=float, default=10.0, show_default=True, help="Score band.")
@click.option("--jobs", type=int, help=JOBS_HELP)
@click.option(
    "--replay-whole",
    is_flag=True,
    help="Replay the whole history for every threshold tried, not only the leads a threshold "
    "can change (slower; the numbers are the same: a way to check).",
)
def review(
    events: tuple[str, ...],
    topics: tuple[str, ...],
    model_path: str | None,
    out: Path,
    json_out: Path | None,
    objective: str,
    target: str,
    grid: str | None,
    band_width: float,
    skip_bad_lines: bool,
    jobs: int | None,
    replay_whole: bool,
) -> None:
    """Review the MQL thresholds against sales outcomes in history (EVENTS.jsonl files)."""
    from stream.reports.commands import run_review
    from stream.reports.review import ReviewOptions
    from stream.reports.sweep import Objective, parse_grid

    if band_width <= 0:
        raise click.BadParameter(f"{band_width}: want a positive width", param_hint="--band-width")
    options = _report(
        "review",
        lambda: ReviewOptions(
            Objective.parse(objective),
            target,
            band_width,
            parse_grid(grid),
            jobs=_jobs(jobs),
            progress=None,
            shortcut=not replay_whole,
        ),
    )
    settings = _report("review", _settings)
    model_path = model_path or settings.model_path or None
    result = _report(
        "review",
        lambda: run_review(
            model_path,
            events,
            out,
            options,
            json_out,
            topics=topics,
            settings=settings,
            skip_bad_lines=skip_bad_lines,
        ),
    )
    _echo_skipped("review", result.skipped)
    s = result.summary
    parts = [
        f"{g} {sg['current']:g} → "
        + ("?" if sg["suggested"] is None else f"{sg['suggested']:g}")
        + (f" [{sg['interval'][0]:g}, {sg['interval'][1]:g}]" if sg["interval"] else "")
        for g, sg in s["suggestions"].items()
    ]
    accepted = s["funnel"]["rates"]["accepted"]
    click.echo(
        f"review: {s['funnel']['counts']['handed_over']} handed to sales, accepted "
        f"{'n/a' if accepted is None else f'{accepted:.0%}'}; suggested thresholds "
        f"({s['options']['objective']}): {', '.join(parts) or 'none'}; "
        f"{result.seconds:.1f}s; report {out}"
    )


LEARN_EXIT_CODES = (
    "Exit codes: 0 the candidate and the report are written; 2 nothing written: a bad history "
    "(its bad lines named), model or option, too few outcomes (the numbers found and needed), "
    "scikit-learn missing; 3 an internal error (a bug: please report it)."
)


@main.command(epilog=LEARN_EXIT_CODES)
@history_options
@click.option(
    "--outcome",
    type=click.Choice(["accepted", "sql", "won"]),
    required=True,
    help="What a good lead did: accepted by sales, became an SQL, or was won.",
)
@click.option(
    "--model",
    "model_path",
    help="The model to start from (default LEADSTREAM_MODEL_PATH, else the packaged model).",
)
@click.option(
    "--candidate",
    "candidate_out",
    type=click.Path(dir_okay=False, path_type=Path),
    default="candidate.yaml",
    show_default=True,
    help="Where the learned model file is written.",
)
@report_outputs("learn.html")
@click.option(
    "--whatif-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default="learn-whatif.html",
    show_default=True,
    help="The what-if report of the current model against the candidate.",
)
@click.option(
    "--bootstrap",
    "resamples",
    type=int,
    default=200,
    show_default=True,
    help="Resamples for the intervals of the weights.",
)
@click.option(
    "--seed", type=int, default=7, show_default=True, help="Seed (same input, same model)."
)
@click.option("--jobs", type=int, help=JOBS_HELP)
def learn(
    events: tuple[str, ...],
    topics: tuple[str, ...],
    outcome: str,
    model_path: str | None,
    candidate_out: Path,
    out: Path,
    json_out: Path | None,
    whatif_out: Path,
    resamples: int,
    seed: int,
    jobs: int | None,
    skip_bad_lines: bool,
) -> None:
    """Learn a candidate model from sales outcomes in history (EVENTS.jsonl files, - for stdin).

    Points per event type and fit points are fitted to the outcome by a regularised logistic
    regression, evaluated on the newer 30 % of the history, written as a model file with a
    report and the what-if of the current model against it. Needs the `learn` extra
    (scikit-learn).
    """
    from stream.learn.command import run_learn

    settings = _report("learn", _settings)
    model_path = model_path or settings.model_path or None
    result = _report(
        "learn",
        lambda: run_learn(
            model_path,
            events,
            outcome,
            out,
            candidate_out,
            json_out,
            whatif_out,
            topics=topics,
            settings=settings,
            resamples=resamples,
            seed=seed,
            jobs=_jobs(jobs),
            skip_bad_lines=skip_bad_lines,
        ),
    )
    s = result.summary
    by = {m["role"]: m for m in s["evaluation"]["models"]}
    changed = [
        f"{w['name']} {w['before']:g}→{w['after']:g}"
        for w in s["weights"]["types"] + s["weights"]["fit"]
        if w["before"] != w["after"]
    ]
    click.echo(
        f"learn: {s['sample']['judged']} leads judged, {s['sample']['positive']} {outcome}; "
        f"held-out AUC {by['current']['auc']:.3f} → {by['candidate']['auc']:.3f}; "
        f"candidate {s['candidate']['model']} in {candidate_out} "
        f"({', '.join(changed) or 'no point changed'}); {result.seconds:.1f}s; report {out}"
    )


@main.command()
@click.option("--leads", type=int, default=200, show_default=True, help="Leads to simulate.")
@click.option("--seed", type=int, default=7, show_default=True, help="Random seed (reproducible).")
@click.option("--url", help="Collector base URL (default from LEADSTREAM_COLLECTOR_HOST/PORT).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Also write the journeys (one JSON line each, with names and emails) to this file.",
)
def simulate(leads: int, seed: int, url: str | None, out: Path | None) -> None:
    """Send realistic lead journeys to a running collector, in Segment's format.

    Prints a short summary; exits 1 when any message failed, so a script notices.
    """
    from collections import Counter

    from stream.demo import simulate_against
    from stream.dev.credentials import with_dev_credentials
    from stream.simulate import write_journeys

    settings = with_dev_credentials(_settings())
    base = url or f"http://{settings.collector_host}:{settings.collector_port}"
    journeys, report = asyncio.run(simulate_against(settings, leads=leads, seed=seed, url=url))
    personas = Counter(j.persona for j in journeys)
    click.echo(
        f"simulated {len(journeys)} lead(s) (seed {seed}) against {base}: "
        + (", ".join(f"{p} {n}" for p, n in sorted(personas.items())) or "none")
    )
    click.echo(report.summary())
    if out is not None:
        click.echo(f"journeys written to {out} ({write_journeys(journeys, out)} lines)")
    if report.failed:
        click.echo(
            f"{report.failed} message(s) were not accepted: check that the collector runs at "
            f"{base} and accepts the write keys of LEADSTREAM_WRITE_KEYS",
            err=True,
        )
        sys.exit(1)


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
    # One-shot tools: aiokafka's INFO lines (subscriptions, group joins) would bury the answer.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


@deadletters.command("list")
@click.option(
    "--handoff", is_flag=True, help="The notifier's dead letters (leads.handoff.deadletter)."
)
@click.option("--reason", help="Only this reason (e.g. invalid_json, schema_violation).")
@click.option("--limit", type=int, default=100, show_default=True)
def deadletters_list(handoff: bool, reason: str | None, limit: int) -> None:
    """Print dead letters as JSON lines: reason, stage, error, where they came from, a preview."""
    import orjson

    from stream.deadletters.redrive import list_dead_letters

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
    from stream.deadletters.redrive import redrive

    counts = asyncio.run(
        redrive(_settings(), reason=reason, stage=stage, dry_run=dry_run, handoff=handoff)
    )
    click.echo(", ".join(f"{k} {v}" for k, v in counts.items()))
