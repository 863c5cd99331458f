"""A notifier without a sink refuses to start (issue 28, item 10): it used to run with sinks=log,
join the production group, take every partition and settle its handoffs without a word to
sales. The log alone is for when it is asked for."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from stream.demo import settings_env
from stream.errors import SettingsError
from stream.notify import GROUP_ID
from stream.notify.service import Notifier
from stream.settings import Settings

pytestmark = pytest.mark.integration


def start_notifier(settings: Settings, log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "stream", "notifier", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **settings_env(settings)},
        )


async def exited_or_ready(proc: subprocess.Popen[bytes], settings: Settings) -> str:
    """ "exited" or "ready" (its /readyz answered 200: it has joined its group), whichever
    happens first."""
    url = f"http://{settings.metrics_host}:{settings.notifier_port}/readyz"
    deadline = time.monotonic() + 90
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return "exited"
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return "ready"
            except (TimeoutError, aiohttp.ClientError):
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("the notifier neither exited nor became ready within 90 s")


async def group_exists(settings: Settings, group: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        return group in {g[0] for g in await admin.list_consumer_groups()}
    finally:
        await admin.close()


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_notifier_without_a_sink_refuses_to_start(settings: Settings, tmp_path: Path) -> None:
    settings = settings.replace(webhook_url="")
    log = tmp_path / "notifier.log"
    proc = start_notifier(settings, log)
    try:
        outcome = await exited_or_ready(proc, settings)
        output = log.read_text()
        assert outcome == "exited", f"the notifier joined its group with no sink:\n{output}"
        assert proc.returncode == 1
        assert "the notifier has no sink" in output
        assert "--sinks log" in output and "LEADSTREAM_WEBHOOK_URL" in output
        assert "Traceback" not in output
    finally:
        stop(proc)
    assert not await group_exists(settings, f"{settings.topic_prefix}{GROUP_ID}")


async def test_log_only_when_asked_for_and_said_loudly(settings: Settings, tmp_path: Path) -> None:
    settings = settings.replace(webhook_url="")
    log = tmp_path / "notifier.log"
    proc = start_notifier(settings, log, "--sinks", "log")
    try:
        assert await exited_or_ready(proc, settings) == "ready", log.read_text()
    finally:
        stop(proc)
    output = log.read_text()
    assert "WARNING" in output and "delivers to the log only" in output


def test_the_refusal_comes_before_any_connection(settings: Settings) -> None:
    """Building the notifier checks it: no Kafka or Redis is touched (also what
    `leadstream settings --check --for notifier` runs)."""
    with pytest.raises(SettingsError, match="no sink"):
        Notifier(settings.replace(webhook_url="", redis_url="redis://127.0.0.1:1/0"))
    explicit = Notifier(settings.replace(webhook_url="", notifier_sinks="log"))
    assert set(explicit.sinks) == {"log"}


def test_routes_file_and_sinks_together_are_refused(settings: Settings, tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text("default: [log]\n")
    with pytest.raises(SettingsError, match="set one of the two"):
        Notifier(settings.replace(routes_path=str(routes), notifier_sinks="log"))
    # A routes file that names the log is explicit enough.
    assert set(Notifier(settings.replace(routes_path=str(routes), webhook_url="")).sinks) == {"log"}
