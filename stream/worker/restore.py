"""Bring partition stores up to the end of their changelog topics before their records are read.

A store keeps the changelog offset it has applied per table (`stores.PartitionStore.offset`);
restoring reads each table's changelog partition from the next offset to the end offset asked
for when the restore starts, one write batch per fetched batch, offsets in the same batch. A
store whose offset lies outside the topic's current range (the topic was deleted and created
again, or a store from another deployment) is wiped and read from the start. Nothing else
writes a partition's changelogs while this process owns the partition, so the end offset asked
for at the start is the end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition

from stream.worker.stores import TABLES, Changes, Stores

log = logging.getLogger("leadstream.worker")


async def restore(
    stores: Stores,
    partitions: Iterable[int],
    changelog: Callable[[str], str],
    consumer: AIOKafkaConsumer,
) -> int:
    """Restore `partitions` (opened in `stores` if they are not) from their changelogs with
    `consumer` (started, no group: assigned here, unassigned at the end). Returns the number
    of changelog records applied."""
    wanted = sorted(set(partitions))
    if not wanted:
        return 0
    started = time.monotonic()
    where = {TopicPartition(changelog(table), p): (p, table) for p in wanted for table in TABLES}
    tps = list(where)
    consumer.assign(tps)
    try:
        beginnings = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        for p in wanted:
            store = stores.acquire(p)
            for table in TABLES:
                tp = TopicPartition(changelog(table), p)
                applied = store.offset(table)
                if applied is not None and not beginnings[tp] - 1 <= applied < ends[tp]:
                    log.warning(
                        "partition %d's store has applied %s offset %d, outside the topic's "
                        "%d..%d: wiping it and restoring from the start",
                        p,
                        tp.topic,
                        applied,
                        beginnings[tp],
                        ends[tp],
                    )
                    stores.wipe(p)
                    break
        todo: dict[TopicPartition, int] = {}
        for tp, (p, table) in where.items():
            applied = stores[p].offset(table)
            start = beginnings[tp] if applied is None else applied + 1
            if start < ends[tp]:
                consumer.seek(tp, start)
                todo[tp] = ends[tp]
        count = await _read(stores, where, todo, consumer)
    finally:
        consumer.assign([])
    if count:
        log.info(
            "restored partitions %s: %d changelog records in %.1fs",
            wanted,
            count,
            time.monotonic() - started,
        )
    return count


async def _read(
    stores: Stores,
    where: dict[TopicPartition, tuple[int, str]],
    todo: dict[TopicPartition, int],
    consumer: AIOKafkaConsumer,
) -> int:
    count = 0
    while todo:
        batches = await consumer.getmany(*todo, timeout_ms=500, max_records=5000)
        by_partition: dict[int, tuple[Changes, dict[str, int]]] = {}
        for tp, records in batches.items():
            if tp not in todo or not records:
                continue
            p, table = where[tp]
            changes, offsets = by_partition.setdefault(p, ({}, {}))
            writes = changes.setdefault(table, {})
            for r in records:
                if r.offset >= todo[tp]:
                    break
                writes[r.key] = r.value
                offsets[table] = r.offset
                count += 1
        for p, (changes, offsets) in by_partition.items():
            stores[p].write(changes, offsets)
        for tp, end in list(todo.items()):
            if await consumer.position(tp) >= end:
                del todo[tp]
    return count
