"""Log lines as JSON when asked, in every process (Faust's worker included)."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from stream.errors import SettingsError
from stream.settings import Settings

EMIT = """
import logging
from stream import logs
from stream.settings import Settings
logs.configure(Settings.from_env())
logging.getLogger("aiokafka.consumer").warning("coordinator %s dead", 1)
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("leadstream.worker").exception("it broke")
"""


def _run(fmt: str) -> str:
    env = {**os.environ, "LEADSTREAM_LOG_FORMAT": fmt, "LEADSTREAM_LOG_LEVEL": "info"}
    done = subprocess.run(
        [sys.executable, "-c", EMIT], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_json_lines_carry_level_logger_message_and_traceback() -> None:
    first, second = (orjson.loads(line) for line in _run("json").splitlines() if line)
    assert first["level"] == "warning" and first["logger"] == "aiokafka.consumer"
    assert first["message"] == "coordinator 1 dead" and first["time"].endswith("+00:00")
    assert second["logger"] == "leadstream.worker" and "ZeroDivisionError" in second["exc"]


def test_text_stays_readable() -> None:
    lines = _run("text").splitlines()
    assert "WARNING aiokafka.consumer: coordinator 1 dead" in lines[0]


def test_the_faust_baseline_gets_our_json_logging() -> None:
    from stream.bench.pfaust import create_app, faust_worker

    settings = Settings.from_env(environ={}, log_format="json", identity_secret="x" * 32)
    worker = faust_worker(create_app(settings), settings)
    formatter = worker.logging_config["formatters"]["leadstream"]["()"]
    assert formatter.__name__ == "JsonFormatter"
    text = settings.replace(log_format="text")
    assert faust_worker(create_app(text), text).logging_config is None


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(SettingsError, match="LEADSTREAM_LOG_FORMAT='xml': want text or json"):
        Settings.from_env(environ={}, log_format="xml")


FAUST_LOGGING = """
import logging
from stream.settings import Settings
from stream.bench.pfaust import create_app, faust_worker
settings = Settings.from_env()
worker = faust_worker(create_app(settings), settings)
worker._setup_logging()  # what Faust's Worker does as it starts
logging.getLogger("faust.transport.consumer").warning("rebalancing")
"""


def test_faust_logs_as_json_once_its_worker_has_set_up_logging() -> None:
    env = {**os.environ, "LEADSTREAM_LOG_FORMAT": "json", "LEADSTREAM_IDENTITY_SECRET": "y" * 32}
    done = subprocess.run(
        [sys.executable, "-c", FAUST_LOGGING], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = [orjson.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert {"logger": "faust.transport.consumer", "message": "rebalancing"}.items() <= lines[
        -1
    ].items()
