"""stream/cli.py: exit codes and output of `settings --check [--for]` and `simulate`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from click.testing import CliRunner

from stream.cli import main
from stream.dev.credentials import dev_credentials
from stream.dev.process import free_port
from stream.settings import ENV_PREFIX, check_environment

# --- settings --check -------------------------------------------------------------------------


def test_settings_check_passes_a_good_environment() -> None:
    result = CliRunner().invoke(main, ["settings", "--check"], env={"LEADSTREAM_PARTITIONS": "8"})
    assert result.exit_code == 0, result.output
    assert "values OK" in result.output


def test_settings_check_alone_says_what_it_did_not_check() -> None:
    """The finding: `settings --check` said "settings OK" where the collector then exited 1."""
    result = CliRunner().invoke(main, ["settings", "--check"], env={"LEADSTREAM_PARTITIONS": "8"})
    assert "settings OK" not in result.output
    assert "not checked" in result.output and "--for collector|worker|notifier" in result.output


def credentials_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Development credentials as LEADSTREAM_* variables, plus `extra` (name: value)."""
    values = {**dev_credentials(tmp_path), **extra}
    return {f"{ENV_PREFIX}{name.upper()}": value for name, value in values.items()}


@pytest.mark.parametrize(
    ("process", "unset", "named"),
    [
        ("collector", "identity_secret", "LEADSTREAM_IDENTITY_SECRET is empty"),
        ("collector", "write_keys", "LEADSTREAM_WRITE_KEYS is empty"),
        ("worker", "identity_secret", "LEADSTREAM_IDENTITY_SECRET is empty"),
        ("notifier", "webhook_url", "the notifier has no sink"),
        ("notifier", "webhook_secret", "LEADSTREAM_WEBHOOK_SECRET is empty"),
    ],
)
def test_check_for_a_process_refuses_what_that_process_refuses(
    tmp_path: Path, process: str, unset: str, named: str
) -> None:
    env = credentials_env(tmp_path, webhook_url="https://hooks.example.com/sales")
    env[f"{ENV_PREFIX}{unset.upper()}"] = ""
    values_only = CliRunner().invoke(main, ["settings", "--check"], env=env)
    assert values_only.exit_code == 0, values_only.output  # every value parses
    check = CliRunner().invoke(main, ["settings", "--check", "--for", process], env=env)
    assert check.exit_code == 1, check.output
    assert f"bad: {process}: {named}" in check.stderr
    started = CliRunner().invoke(main, [process], env=env)  # refused before it connects
    assert started.exit_code == 1, started.output
    assert named in started.output


def test_check_for_each_process_asks_only_what_it_needs(tmp_path: Path) -> None:
    env = credentials_env(
        tmp_path,
        webhook_url="https://hooks.example.com/sales",
        model_path=str(tmp_path / "no-such-model.yaml"),
    )
    every = ["--for", "collector", "--for", "notifier"]
    result = CliRunner().invoke(main, ["settings", "--check", *every], env=env)
    assert result.exit_code == 0, result.output
    assert "settings OK for the collector, notifier" in result.output
    worker = CliRunner().invoke(main, ["settings", "--check", "--for", "worker"], env=env)
    assert worker.exit_code == 1
    assert "bad: worker: " in worker.stderr and "no-such-model.yaml" in worker.stderr


def test_for_without_check_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["settings", "--for", "worker"])
    assert result.exit_code == 2 and "--for goes with --check" in result.output


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"LEADSTREAM_PARTITIONS": "many"}, "LEADSTREAM_PARTITIONS='many': want a int"),
        ({"LEADSTREAM_PARTITIONS": "0"}, "LEADSTREAM_PARTITIONS=0: want 1 or more"),
        ({"LEADSTREAM_KAFKA_BOOTSRAP": "k:9092"}, "LEADSTREAM_KAFKA_BOOTSRAP is not a setting"),
        ({"LEADSTREAM_WORKER_INPUT": "stream"}, "LEADSTREAM_WORKER_INPUT is no longer a setting"),
    ],
)
def test_settings_check_fails_on_a_bad_value(env: dict[str, str], named: str) -> None:
    result = CliRunner().invoke(main, ["settings", "--check"], env=env)
    assert result.exit_code == 1
    assert named in result.stderr


def test_check_environment_names_every_bad_value() -> None:
    problems = check_environment(
        {"LEADSTREAM_SMTP_PORT": "x", "LEADSTREAM_ALLOW_PRIVATE_URLS": "maybe", "HOME": "/root"}
    )
    assert len(problems) == 2
    assert all("want a" in p for p in problems)


def test_settings_without_check_lists_the_settings() -> None:
    result = CliRunner().invoke(main, ["settings"])
    assert result.exit_code == 0
    assert "LEADSTREAM_KAFKA_BOOTSTRAP\n    default" in result.output


# --- simulate ---------------------------------------------------------------------------------


class StubCollector:
    """A `/v1/batch` endpoint answering one fixed status, in its own thread and event loop.

    `leadstream simulate` runs `asyncio.run` itself, so the server cannot share its loop.
    """

    def __init__(self, status: int) -> None:
        self.status = status
        self.port = free_port()
        self.received = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    async def _batch(self, request: web.Request) -> web.Response:
        self.received += len((await request.json())["batch"])
        return web.json_response({"success": self.status == 200}, status=self.status)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/v1/batch", self._batch)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def __enter__(self) -> StubCollector:
        self._thread.start()
        assert self._ready.wait(10), "stub collector did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def accepting() -> Iterator[StubCollector]:
    with StubCollector(200) as stub:
        yield stub


@pytest.fixture
def refusing() -> Iterator[StubCollector]:
    with StubCollector(400) as stub:
        yield stub


def test_simulate_prints_a_short_summary_without_lead_data(accepting: StubCollector) -> None:
    result = CliRunner().invoke(main, ["simulate", "--leads", "20", "--url", accepting.url])
    assert result.exit_code == 0, result.output
    assert accepting.received > 100
    assert f"{accepting.received} message(s) accepted, 0 failed" in result.stdout
    assert len(result.stdout.splitlines()) <= 3
    assert "@" not in result.stdout  # no emails
    assert "Journey(" not in result.stdout  # no repr()


def test_simulate_writes_journeys_only_to_out(accepting: StubCollector, tmp_path: Path) -> None:
    out = tmp_path / "journeys.jsonl"
    result = CliRunner().invoke(
        main, ["simulate", "--leads", "5", "--url", accepting.url, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["user_id"] for r in rows] == [f"sim-7-{i:06d}" for i in range(5)]
    assert sum(len(r["messages"]) for r in rows) == accepting.received
    assert "@" not in result.stdout
    assert f"journeys written to {out} (5 lines)" in result.stdout


def test_simulate_exits_non_zero_when_messages_failed(refusing: StubCollector) -> None:
    result = CliRunner().invoke(main, ["simulate", "--leads", "3", "--url", refusing.url])
    assert result.exit_code == 1
    assert f"0 message(s) accepted, {refusing.received} failed" in result.stdout
    assert "failed: HTTP 400" in result.stdout
    assert "were not accepted: check that the collector runs" in result.stderr


def test_the_bench_is_imported_only_when_run() -> None:
    """A process start (`leadstream collector`, `settings`, …) does not pay for the bench."""
    script = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from stream.cli import main\n"
        "assert CliRunner().invoke(main, ['settings']).exit_code == 0\n"
        "print(sorted(m for m in sys.modules if m.startswith('stream.bench')))\n"
        "assert CliRunner().invoke(main, ['bench', '--help']).exit_code == 0\n"
        "print('stream.bench.cli' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split("\n")
    assert out[:2] == ["[]", "True"]
    assert "bench" in CliRunner().invoke(main, ["--help"]).output
