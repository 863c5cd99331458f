"""Partition numbers to batch workers: every input topic's partition n goes to one worker."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from stream.worker.assignor import CoPartitionAssignor, spread

TOPICS = ["web", "email", "by_lead", "accounts"]


class Cluster:
    def __init__(self, counts: dict[str, int]):
        self.counts = counts

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        n = self.counts.get(topic)
        return None if n is None else set(range(n))


def members(*names: str, topics: list[str] = TOPICS) -> dict[str, Any]:
    return {name: SimpleNamespace(subscription=topics) for name in names}


@pytest.mark.parametrize(
    ("workers", "partitions", "expected"),
    [
        (1, 4, [4]),
        (2, 4, [2, 2]),
        (3, 12, [4, 4, 4]),
        (3, 4, [2, 1, 1]),
        (5, 4, [1, 1, 1, 1, 0]),
    ],
)
def test_numbers_are_spread_evenly(workers: int, partitions: int, expected: list[int]) -> None:
    given = spread([f"m{n}" for n in range(workers)], range(partitions))
    assert [len(given[f"m{n}"]) for n in range(workers)] == expected
    assert sorted(p for ps in given.values() for p in ps) == list(range(partitions))


def test_each_worker_gets_the_same_numbers_of_every_topic() -> None:
    cluster = Cluster(dict.fromkeys(TOPICS, 12))
    assignments = CoPartitionAssignor.assign(cluster, members("b", "a", "c"))
    seen: set[int] = set()
    for assignment in assignments.values():
        by_topic = dict(assignment.assignment)
        assert set(by_topic) == set(TOPICS)
        numbers = {tuple(ps) for ps in by_topic.values()}
        assert len(numbers) == 1  # the same partitions of every topic
        mine = set(next(iter(numbers)))
        assert not mine & seen
        seen |= mine
    assert seen == set(range(12))


def test_partitions_that_only_some_topics_have_are_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cluster = Cluster({"web": 4, "email": 4, "by_lead": 6, "accounts": 4})
    assignments = CoPartitionAssignor.assign(cluster, members("a"))
    assert dict(assignments["a"].assignment)["by_lead"] == [0, 1, 2, 3]
    assert "by_lead has partitions [0, 1, 2, 3, 4, 5]" in caplog.text
