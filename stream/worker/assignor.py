"""Partition *numbers* to workers: every input topic's partition n, and its stores, together.

A person's records of every channel topic, their by-lead records and the tables that hold
their state share one partition number; the worker that owns number n must get partition n
of every input topic. Kafka's range assignor happens to do that when all topics have the same
partition count; this assignor says it outright, refuses (logs and leaves out) partitions that
only some topics have, and has a protocol name of its own, so a group with Faust-based workers
of earlier releases (whose assignor is "faust") refuses this worker instead of splitting
partitions with them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

log = logging.getLogger("leadstream.worker")


def spread(members: Iterable[str], numbers: Iterable[int]) -> dict[str, list[int]]:
    """Partition numbers to members, round robin over the sorted members: the counts differ
    by one at most, and every member computes the same answer."""
    order = sorted(members)
    out: dict[str, list[int]] = {m: [] for m in order}
    for i, number in enumerate(sorted(numbers)):
        out[order[i % len(order)]].append(number)
    return out


class CoPartitionAssignor(AbstractPartitionAssignor):  # type: ignore[misc]
    name = "leadstream-copartitioned"
    version = 0

    @classmethod
    def assign(
        cls, cluster: Any, members: Mapping[str, Any]
    ) -> dict[str, ConsumerProtocolMemberAssignment]:
        topics = sorted({t for meta in members.values() for t in meta.subscription})
        counts = {t: cluster.partitions_for_topic(t) for t in topics}
        known = [set(p) for p in counts.values() if p]
        numbers = set.intersection(*known) if known else set()
        for topic, partitions in counts.items():
            extra = set(partitions or ()) - numbers
            if partitions is None or extra:
                log.error(
                    "topic %s has partitions %s, not the %d every input must have: left "
                    "unassigned (LEADSTREAM_PARTITIONS and the topics must agree)",
                    topic,
                    sorted(partitions or ()),
                    len(numbers),
                )
        given = spread(members, numbers)
        return {
            member: ConsumerProtocolMemberAssignment(
                cls.version,
                sorted((t, given[member]) for t in meta.subscription if counts.get(t)),
                b"",
            )
            for member, meta in members.items()
        }

    @classmethod
    def metadata(cls, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        return ConsumerProtocolMemberMetadata(cls.version, list(topics), b"")

    @classmethod
    def on_assignment(cls, assignment: ConsumerProtocolMemberAssignment) -> None:
        pass
