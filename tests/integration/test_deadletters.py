"""`leadstream deadletters list | redrive` against the real broker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from stream.cli import main
from stream.deadletters.record import deadletter_headers
from stream.deadletters.redrive import list_dead_letters, redrive
from stream.demo import Processes
from stream.settings import Settings
from stream.topics import Topics
from tests.kafka_helpers import headers_of, produce, produce_records, read_all

pytestmark = pytest.mark.integration


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(settings, tmp_path / "logs")
    procs.start("worker")
    yield procs
    procs.stop()


async def listed(settings: Settings, count: int, **filters: Any) -> list[dict[str, Any]]:
    """`list_dead_letters` once it shows at least `count` rows."""
    options: dict[str, Any] = {"handoff": False, "reason": None, "limit": 100, **filters}
    deadline = time.monotonic() + 90
    while len(rows := await list_dead_letters(settings, **options)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"only {len(rows)} dead letter(s) listed: {rows}")
        await asyncio.sleep(0.3)
    return rows


async def test_list_shows_what_a_running_worker_refused(
    settings: Settings, worker: Processes
) -> None:
    web = Topics.from_settings(settings).events("web")
    await produce(settings.kafka_bootstrap, web, [(b"visitor-7", b"{not json"), (b"v-8", b"[1]")])

    rows = await listed(settings, 2)
    by_preview = {row["preview"]: row for row in rows}
    assert set(by_preview) == {"{not json", "[1]"}
    garbage = by_preview["{not json"]
    assert (garbage["reason"], garbage["stage"], garbage["original_topic"]) == (
        "invalid_json",
        "identity",
        web,
    )
    assert garbage["bytes"] == len(b"{not json") and garbage["error"]
    assert by_preview["[1]"]["reason"] == "schema_violation"
    assert garbage["offset"].startswith("0:")
    only = await list_dead_letters(settings, handoff=False, reason="invalid_json", limit=100)
    assert [row["preview"] for row in only] == ["{not json"]
    assert await list_dead_letters(settings, handoff=True, reason=None, limit=100) == []


async def test_redrive_sends_original_bytes_and_key_back_once(settings: Settings) -> None:
    topics = Topics.from_settings(settings)
    web, email = topics.events("web"), topics.events("email")
    garbage = b'{"type": "web.page_view", "anonymous_id": "a-1", "occurred_at": "yesterday"}'
    await produce_records(
        settings.kafka_bootstrap,
        topics.deadletter,
        [
            (b"a-1", garbage, deadletter_headers(
                "schema_violation", "identity", "bad time", topic=web, partition=2, offset=41)),
            (b"ada@x.io", b"\xff\xfe not utf-8", deadletter_headers(
                "invalid_json", "scoring", "undecodable", topic=email, partition=0, offset=5)),
            (b"anon-9", b'{"batch": [', deadletter_headers(
                "schema_violation", "collector", "no identity")),
        ],
    )  # fmt: skip
    rows = await list_dead_letters(settings, handoff=False, reason=None, limit=100)
    assert [(r["reason"], r["stage"], r["original_topic"]) for r in rows] == [
        ("schema_violation", "identity", web),
        ("invalid_json", "scoring", email),
        ("schema_violation", "collector", None),
    ]

    dry = await redrive(settings, reason="schema_violation", stage=None, dry_run=True)
    assert dry == {"seen": 3, "redriven": 1, "no_topic": 1, "skipped": 1}
    assert await read_all(settings.kafka_bootstrap, web) == []  # a dry run sends nothing
    # ...and does not move the group: the same counts again.
    assert await redrive(settings, reason="schema_violation", stage=None, dry_run=True) == dry

    # Only what the stage filter picks, the collector's letters have no topic to go back to.
    assert await redrive(settings, reason=None, stage="identity", dry_run=True) == {
        "seen": 3,
        "redriven": 1,
        "no_topic": 0,
        "skipped": 2,
    }

    done = await redrive(settings, reason=None, stage=None, dry_run=False)
    assert done == {"seen": 3, "redriven": 2, "no_topic": 1, "skipped": 0}
    [back] = await read_all(settings.kafka_bootstrap, web)
    assert (back.key, back.value) == (b"a-1", garbage)  # bytes and key unchanged
    assert headers_of(back) == {"redriven_from": "0:0"}
    [back_email] = await read_all(settings.kafka_bootstrap, email)
    assert (back_email.key, back_email.value) == (b"ada@x.io", b"\xff\xfe not utf-8")

    # The consumer group remembers: a second run finds nothing new and sends nothing.
    again = await redrive(settings, reason=None, stage=None, dry_run=False)
    assert again == {"seen": 0, "redriven": 0, "no_topic": 0, "skipped": 0}
    assert len(await read_all(settings.kafka_bootstrap, web)) == 1
    assert len(await read_all(settings.kafka_bootstrap, email)) == 1
    # `list` still shows every dead letter: it reads from the beginning, without the group.
    assert len(await list_dead_letters(settings, handoff=False, reason=None, limit=100)) == 3

    # A new dead letter after the run is the only one the next run sees.
    await produce_records(
        settings.kafka_bootstrap,
        topics.deadletter,
        [(b"a-2", b"{}", deadletter_headers("processing_error", "scoring", "x", topic=web))],
    )
    assert await redrive(settings, reason=None, stage=None, dry_run=False) == {
        "seen": 1,
        "redriven": 1,
        "no_topic": 0,
        "skipped": 0,
    }
    assert sorted(r.key for r in await read_all(settings.kafka_bootstrap, web)) == [b"a-1", b"a-2"]


async def test_reason_filter_looks_past_the_limit(settings: Settings) -> None:
    """`list --reason R --limit N` gives the first N dead letters *with* reason R, however
    many others come first (it used to cut at N records and filter afterwards: nothing)."""
    topics = Topics.from_settings(settings)
    web = topics.events("web")
    other = [(b"k", b"x", deadletter_headers("invalid_json", "identity", "e", topic=web))]
    await produce_records(
        settings.kafka_bootstrap,
        topics.deadletter,
        other * 5
        + [(b"k9", b"[]", deadletter_headers("schema_violation", "identity", "e", topic=web))]
        + other * 2,
    )
    rows = await list_dead_letters(settings, handoff=False, reason="schema_violation", limit=3)
    assert [(r["offset"], r["preview"]) for r in rows] == [("0:5", "[]")]
    rows = await list_dead_letters(settings, handoff=False, reason="invalid_json", limit=6)
    assert [r["offset"] for r in rows] == ["0:0", "0:1", "0:2", "0:3", "0:4", "0:6"]


async def test_a_missing_topic_is_an_error_and_is_not_created(settings: Settings) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    from stream.errors import SettingsError

    typo = settings.replace(topic_prefix=f"no-such-{settings.topic_prefix}")
    with pytest.raises(SettingsError, match="LEADSTREAM_TOPIC_PREFIX"):
        await list_dead_letters(typo, handoff=False, reason=None, limit=10)
    with pytest.raises(SettingsError, match="does not exist"):
        await redrive(typo, reason=None, stage=None, dry_run=True)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        assert not [t for t in await admin.list_topics() if t.startswith(typo.topic_prefix)]
    finally:
        await admin.close()


async def test_handoff_redrive_keeps_the_cloudevent_headers(settings: Settings) -> None:
    """The notifier keeps a handoff's ce_* headers on its dead letter; a re-drive sends them
    back (the notifier reads a handoff from them) without the dead-letter bookkeeping."""
    topics = Topics.from_settings(settings)
    ce = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"lead-1:3"),
        ("ce_type", b"leadstream.lead.stage_changed.v1"),
        ("ce_source", b"leadstream/worker"),
        ("ce_time", b"2026-05-04T09:02:00.000Z"),
        ("content-type", b"application/json"),
    ]
    data = b'{"lead_id": "lead-1", "to_stage": "sales_ready"}'
    dead = deadletter_headers(
        "delivery_exhausted",
        "notifier",
        "HTTP 503",
        topic=topics.handoff,
        partition=1,
        offset=9,
        extra=[("sink", "webhook"), ("attempts", "6")],
    )
    await produce_records(
        settings.kafka_bootstrap, topics.handoff_deadletter, [(b"lead-1", data, ce + dead)]
    )
    [row] = await list_dead_letters(settings, handoff=True, reason=None, limit=10)
    assert (row["reason"], row["stage"], row["original_topic"]) == (
        "delivery_exhausted",
        "notifier",
        topics.handoff,
    )
    assert await redrive(settings, reason=None, stage=None, dry_run=False, handoff=True) == {
        "seen": 1,
        "redriven": 1,
        "no_topic": 0,
        "skipped": 0,
    }
    [back] = await read_all(settings.kafka_bootstrap, topics.handoff)
    assert (back.key, back.value) == (b"lead-1", data)
    assert list(back.headers) == [*ce, ("redriven_from", b"0:0")]
    assert (await redrive(settings, reason=None, stage=None, dry_run=False, handoff=True))[
        "seen"
    ] == 0
    # The events' dead-letter topic and its group position are separate.
    assert await redrive(settings, reason=None, stage=None, dry_run=True) == {
        "seen": 0,
        "redriven": 0,
        "no_topic": 0,
        "skipped": 0,
    }


async def test_cli_output(settings: Settings) -> None:
    topics = Topics.from_settings(settings)
    web = topics.events("web")
    await produce_records(
        settings.kafka_bootstrap,
        topics.deadletter,
        [
            (b"k1", b"{not json", deadletter_headers("invalid_json", "identity", "e1", topic=web)),
            (b"k2", b"[]", deadletter_headers("schema_violation", "collector", "not an object")),
        ],
    )
    env = {
        "LEADSTREAM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "LEADSTREAM_TOPIC_PREFIX": settings.topic_prefix,
    }

    def cli(*args: str) -> Any:
        # In a thread: the commands call asyncio.run, which needs a thread without a loop.
        result = CliRunner().invoke(main, ["deadletters", *args], env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result

    listed = await asyncio.to_thread(cli, "list")
    rows = [orjson.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["reason"], r["stage"], r["original_topic"], r["preview"]) for r in rows] == [
        ("invalid_json", "identity", web, "{not json"),
        ("schema_violation", "collector", None, "[]"),
    ]
    assert set(rows[0]) == {
        "offset", "reason", "stage", "error", "original_topic", "bytes", "preview"
    }  # fmt: skip
    assert listed.stderr.strip() == "2 dead letter(s)"

    one = await asyncio.to_thread(cli, "list", "--reason", "schema_violation")
    assert len(one.stdout.splitlines()) == 1 and one.stderr.strip() == "1 dead letter(s)"

    dry = await asyncio.to_thread(cli, "redrive", "--dry-run")
    assert dry.stdout.strip() == "seen 2, redriven 1, no_topic 1, skipped 0"
    assert await read_all(settings.kafka_bootstrap, web) == []

    real = await asyncio.to_thread(cli, "redrive", "--reason", "invalid_json")
    assert real.stdout.strip() == "seen 2, redriven 1, no_topic 0, skipped 1"
    [back] = await read_all(settings.kafka_bootstrap, web)
    assert (back.key, back.value) == (b"k1", b"{not json")

    again = await asyncio.to_thread(cli, "redrive", "--reason", "invalid_json")
    assert again.stdout.strip() == "seen 0, redriven 0, no_topic 0, skipped 0"
    # Another filter keeps its own position: it is not starved by the first one (a repeat
    # of an already re-driven record is harmless: the worker drops a seen event id).
    other = await asyncio.to_thread(cli, "redrive")
    assert other.stdout.strip() == "seen 2, redriven 1, no_topic 1, skipped 0"

    def cli_typo() -> Any:
        typo = {**env, "LEADSTREAM_TOPIC_PREFIX": "no-such-prefix."}
        return CliRunner().invoke(main, ["deadletters", "list"], env=typo)

    failed = await asyncio.to_thread(cli_typo)
    assert failed.exit_code == 1
    assert "'no-such-prefix.leads.deadletter' does not exist" in failed.stderr
    assert "Traceback" not in failed.output
