"""`whatif --from-topic channels` against the real broker: the same answers as from the file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from click.testing import CliRunner

from stream.cli import main
from stream.demo import settings_env
from stream.errors import SettingsError
from stream.reports.history import History
from stream.reports.kafka import read_topics
from stream.reports.runs import run_model, with_thresholds
from stream.reports.whatif import compare
from stream.scoring.events import parse_time
from stream.scoring.model import MODELS_DIR, default_model
from stream.settings import Settings
from stream.topics import Topics

from .histories import threshold_history

pytestmark = pytest.mark.integration


async def _produce(settings: Settings, lines: list[str]) -> None:
    """Each event to its channel topic, keyed like the collector keys it, stamped with its
    event time (as an import of history would be)."""
    topics = Topics.from_settings(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        futures = []
        for line in lines:
            event = orjson.loads(line)
            key = str(event.get("anonymous_id") or event["user_id"]).encode()
            stamp = parse_time(event["occurred_at"]) // 1000
            futures.append(
                await producer.send(
                    topics.events(event["channel"]),
                    key=key,
                    value=line.encode(),
                    timestamp_ms=stamp,
                )
            )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def test_whatif_from_the_channel_topics(settings: Settings, tmp_path: Path) -> None:
    lines, _ = threshold_history()
    asyncio.run(_produce(settings, lines))
    read = asyncio.run(read_topics(settings, ["channels"]))
    assert sorted(read) == sorted(lines)  # every record once, none from another test

    model = default_model()
    candidate = with_thresholds(model, {"A": 45, "B": 45}, "a45")
    expected = compare(
        History.from_lines(lines),
        run_model(History.from_lines(lines), model),
        run_model(History.from_lines(lines), candidate),
    )
    path = tmp_path / "candidate.yaml"
    text = (MODELS_DIR / "default-b2b.yaml").read_text()
    path.write_text(text.replace("thresholds: {A: 35, B: 45}", "thresholds: {A: 45, B: 45}"))
    out, js = tmp_path / "w.html", tmp_path / "w.json"
    result = CliRunner().invoke(
        main,
        ["whatif", "--from-topic", "channels", "--candidate", str(path), "--out", str(out),
         "--json", str(js)],
        env=settings_env(settings),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    got = orjson.loads(js.read_bytes())
    for name in ("baseline_mqls", "candidate_mqls", "mql_change", "leads_changed", "leads"):
        assert got["metrics"][name] == expected["metrics"][name], name
    assert {c["lead_id"] for c in got["changed"]} == {c["lead_id"] for c in expected["changed"]}


def test_a_missing_topic_is_a_clear_error(settings: Settings) -> None:
    with pytest.raises(SettingsError, match="not on"):
        asyncio.run(read_topics(settings, [f"{settings.topic_prefix}no.such.topic"]))
