"""`leadstream deadletters list | redrive`: look at what was refused, send it back after a fix.

A re-drive sends the original bytes unchanged, with the original key, to the topic they came
from (the `original_topic` header). Dead letters refused by the collector itself have no topic
to go back to: they are listed, and re-driven by posting them again once the client is fixed.
The re-drive remembers how far it got through a consumer group per filter
(`leadstream-redrive.<topic>.<reason>.<stage>`), so each dead letter is re-driven once by
each filter, and a re-drive of one reason does not skip the dead letters of another. The
record's own headers (a handoff's `ce_*` CloudEvents attributes) go back with it; the
dead-letter bookkeeping headers do not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from stream.deadletters.record import header_value
from stream.errors import SettingsError
from stream.settings import Settings
from stream.topics import Topics

# Headers a dead-letter topic adds (`record.deadletter_headers`, the notifier's extras, an
# earlier re-drive's mark): not part of the original record, so not sent back.
_BOOKKEEPING = frozenset(
    {"reason", "stage", "error", "original_topic", "original_partition", "original_offset"}
    | {"sink", "attempts", "redriven_from"}
)


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    reason: str
    stage: str
    error: str
    original_topic: str | None
    own_headers: tuple[tuple[str, bytes], ...] = ()  # the original record's, sent back with it
    original_partition: int | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "offset": f"{self.partition}:{self.offset}",
            "reason": self.reason,
            "stage": self.stage,
            "error": self.error,
            "original_topic": self.original_topic,
            "bytes": len(self.value),
            "preview": self.value[:120].decode("utf-8", "replace"),
        }


def _dead_letter(record: ConsumerRecord[bytes, bytes]) -> DeadLetter:
    headers = list(record.headers)
    return DeadLetter(
        record.partition,
        record.offset,
        record.key,
        record.value or b"",
        header_value(headers, "reason") or "unknown",
        header_value(headers, "stage") or "unknown",
        header_value(headers, "error") or "",
        header_value(headers, "original_topic"),
        tuple((k, v) for k, v in headers if k not in _BOOKKEEPING),
        _int_or_none(header_value(headers, "original_partition")),
    )


async def read_dead_letters(
    settings: Settings,
    *,
    handoff: bool = False,
    group: str | None = None,
    limit: int = 1000,
    want: Callable[[DeadLetter], bool] | None = None,
) -> tuple[list[DeadLetter], AIOKafkaConsumer]:
    """Dead letters from the beginning (or from the group's position); caller stops consumer.

    With `want`, only matching dead letters are kept and `limit` counts those: the others are
    read past, so a filter finds matches behind any number of non-matching records.
    """
    topics = Topics.from_settings(settings)
    topic = topics.handoff_deadletter if handoff else topics.deadletter
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        # `topics()` fetches the cluster's metadata without naming the topic: asking for a
        # missing topic by name would let a broker with auto-creation create it (a typo in the
        # prefix would leave a stray topic behind and list nothing).
        if topic not in await consumer.topics():
            raise SettingsError(
                f"topic {topic!r} does not exist on {settings.kafka_bootstrap}: check "
                f"LEADSTREAM_TOPIC_PREFIX={settings.topic_prefix!r} and LEADSTREAM_KAFKA_BOOTSTRAP"
            )
        parts = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or {0})
        ]
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        if group is None:
            await consumer.seek_to_beginning(*parts)
        found: list[DeadLetter] = []
        while len(found) < limit and any([await _behind(consumer, tp, ends[tp]) for tp in parts]):
            if want is None:
                batch = await consumer.getmany(timeout_ms=1000, max_records=limit - len(found))
            else:
                batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                letters = (_dead_letter(r) for r in records)
                found.extend(letters if want is None else filter(want, letters))
    except BaseException:
        await consumer.stop()
        raise
    return found[:limit], consumer


async def _behind(consumer: AIOKafkaConsumer, tp: TopicPartition, end: int) -> bool:
    return bool(await consumer.position(tp) < end)


def select(
    letters: list[DeadLetter], reason: str | None, stage: str | None
) -> Iterator[DeadLetter]:
    for letter in letters:
        if (reason is None or letter.reason == reason) and (stage is None or letter.stage == stage):
            yield letter


async def list_dead_letters(
    settings: Settings, *, handoff: bool, reason: str | None, limit: int
) -> list[dict[str, Any]]:
    letters, consumer = await read_dead_letters(
        settings,
        handoff=handoff,
        limit=limit,
        want=lambda letter: reason is None or letter.reason == reason,
    )
    await consumer.stop()
    return [d.summary() for d in letters]


async def redrive(
    settings: Settings,
    *,
    reason: str | None,
    stage: str | None,
    dry_run: bool,
    handoff: bool = False,
) -> dict[str, int]:
    """Send matching dead letters back to their original topic; commit the group's position.

    `handoff=True` re-drives the notifier's dead letters (`leads.handoff.deadletter`) to
    `leads.handoff`, with their CloudEvents headers.
    """
    # One position per filter: `--reason a` must not use up the dead letters of `--reason b`.
    which = "handoff" if handoff else "events"
    group = f"{settings.topic_prefix}leadstream-redrive.{which}.{reason or '*'}.{stage or '*'}"
    letters, consumer = await read_dead_letters(
        settings, handoff=handoff, group=group, limit=100_000
    )
    counts = {"seen": len(letters), "redriven": 0, "no_topic": 0, "skipped": 0}
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        futures = []
        chosen = set()
        for letter in select(letters, reason, stage):
            chosen.add((letter.partition, letter.offset))
            if letter.original_topic is None:
                counts["no_topic"] += 1
                continue
            counts["redriven"] += 1
            if not dry_run:
                futures.append(
                    await producer.send(
                        letter.original_topic,
                        partition=await _same_partition(producer, letter),
                        key=letter.key,
                        value=letter.value,
                        headers=[
                            *letter.own_headers,
                            ("redriven_from", f"{letter.partition}:{letter.offset}".encode()),
                        ],
                    )
                )
        for fut in futures:
            await fut
        counts["skipped"] = len(letters) - len(chosen)
        if not dry_run and letters:
            # Everything read is settled: re-driven, or not wanted by this filter. A later
            # run with another filter starts after these; `list` still shows all of them.
            await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()
    return counts


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


async def _same_partition(producer: AIOKafkaProducer, letter: DeadLetter) -> int | None:
    """The partition the record came from, while the topic still has it: a by-lead record is
    placed in its lead's home partition, not where its key would hash (`home_key`). Without
    one, the key decides, as it did for the original."""
    if letter.original_partition is None or letter.original_topic is None:
        return None
    partitions = await producer.partitions_for(letter.original_topic)
    return letter.original_partition if letter.original_partition in partitions else None
