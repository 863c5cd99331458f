"""Partition numbers to batch workers: every input topic's partition n goes to one worker, the
counts stay balanced, and a number stays with its worker when the group changes."""

from __future__ import annotations

from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.coordinator.protocol import ConsumerProtocol
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.worker.assignor import Claim, CoPartitionAssignor, spread, sticky

TOPICS = ["web", "email", "by_lead", "accounts"]


class Cluster:
    def __init__(self, counts: dict[str, int]):
        self.counts = counts

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        n = self.counts.get(topic)
        return None if n is None else set(range(n))


def members(*names: str, topics: list[str] = TOPICS) -> dict[str, Any]:
    return {name: SimpleNamespace(subscription=topics, user_data=b"") for name in names}


class Group:
    """Members of one group, each with its own assignor, taken through the protocol the way
    aiokafka does it: each member's metadata encoded at its join, one member (the leader)
    assigns, each member decodes its assignment."""

    def __init__(self, partitions: int = 12):
        self.cluster = Cluster(dict.fromkeys(TOPICS, partitions))
        self.members: dict[str, CoPartitionAssignor] = {}
        self.disk: dict[str, set[int]] = {}
        self.owner: dict[int, str] = {}

    def join(self, name: str) -> None:
        disk = self.disk.setdefault(name, set())  # a restarted member finds its stores
        self.members[name] = CoPartitionAssignor(lambda: sorted(disk))

    def leave(self, name: str) -> None:
        del self.members[name]

    def rebalance(self, leader: str | None = None) -> dict[str, list[int]]:
        metadata = {
            name: ConsumerProtocol.METADATA.decode(assignor.metadata(TOPICS).encode())
            for name, assignor in self.members.items()
        }
        chosen = self.members[leader or min(self.members)]
        assignments = chosen.assign(self.cluster, metadata)
        out: dict[str, list[int]] = {}
        for name, assignment in assignments.items():
            decoded = ConsumerProtocol.ASSIGNMENT.decode(assignment.encode())
            self.members[name].on_assignment(decoded)
            by_topic = {t: sorted(ps) for t, ps in decoded.assignment}
            assert set(by_topic) == set(TOPICS)
            numbers = {tuple(ps) for ps in by_topic.values()}
            assert len(numbers) == 1, "every topic's partition n goes to the same member"
            out[name] = list(next(iter(numbers)))
            self.disk[name] |= set(out[name])
        everything = sorted(n for ns in out.values() for n in ns)
        assert everything == sorted(self.cluster.partitions_for_topic("web") or ())
        counts = [len(ns) for ns in out.values()]
        assert max(counts) - min(counts) <= 1
        return out

    def moved(self, before: dict[str, list[int]], after: dict[str, list[int]]) -> set[int]:
        owner = {n: m for m, ns in before.items() for n in ns}
        return {n for m, ns in after.items() for n in ns if owner.get(n) != m}


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
    assignments = CoPartitionAssignor().assign(cluster, members("b", "a", "c"))
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
    assignments = CoPartitionAssignor().assign(cluster, members("a"))
    assert dict(assignments["a"].assignment)["by_lead"] == [0, 1, 2, 3]
    assert "by_lead has partitions [0, 1, 2, 3, 4, 5]" in caplog.text


def test_a_joining_worker_takes_a_share_and_nothing_else_moves() -> None:
    group = Group(12)
    group.join("a")
    group.join("b")
    before = group.rebalance()
    group.join("c")
    after = group.rebalance()
    assert group.moved(before, after) == set(after["c"])
    assert len(after["c"]) == 4
    for name in ("a", "b"):
        assert set(after[name]) <= set(before[name])


def test_a_leaving_worker_s_numbers_go_to_the_rest_and_theirs_stay() -> None:
    group = Group(12)
    for name in ("a", "b", "c"):
        group.join(name)
    before = group.rebalance()
    group.leave("b")  # a SIGTERM, or a crash once its session timed out
    after = group.rebalance(leader="c")
    assert group.moved(before, after) == set(before["b"])
    for name in ("a", "c"):
        assert set(before[name]) <= set(after[name])


def test_uneven_counts_keep_the_extra_number_where_it_is() -> None:
    group = Group(4)
    for name in ("a", "b"):
        group.join(name)
    first = group.rebalance()
    group.join("c")
    second = group.rebalance()
    assert len(group.moved(first, second)) == 1  # 2+2 -> 2+1+1: one number moves
    group.leave("c")
    third = group.rebalance()
    assert group.moved(second, third) == set(second["c"])


def test_a_restarted_worker_gets_back_the_numbers_it_has_stores_of() -> None:
    group = Group(12)
    group.join("a")
    group.join("b")
    first = group.rebalance()
    group.leave("a")  # stopped: b holds all twelve; a's stores stay on its disk
    group.rebalance()
    group.join("a")  # started again: no assignment yet, but its stores
    again = group.rebalance()
    assert again == first


def test_moved_numbers_go_to_a_worker_that_has_their_store() -> None:
    claims = {
        "a": Claim(3, frozenset(range(6)), frozenset()),
        "b": Claim(3, frozenset(range(6, 12)), frozenset()),
        "c": Claim(0, frozenset(), frozenset({1, 2, 7, 8, 11})),
        "d": Claim(0, frozenset(), frozenset()),
    }
    given = sticky(claims, range(12))
    assert [len(given[m]) for m in "abcd"] == [3, 3, 3, 3]
    assert set(given["a"]) <= set(range(6))
    assert set(given["b"]) <= set(range(6, 12))
    assert set(given["c"]) <= {1, 2, 7, 8, 11}  # three of the five it has stores of


def test_claims_of_an_older_assignment_do_not_count() -> None:
    """A member left out of the latest assignment (its session expired while it was stuck)
    still claims what it had: those numbers were given to others meanwhile."""
    claims = {
        "a": Claim(7, frozenset({0, 1, 2, 3}), frozenset()),
        "zombie": Claim(6, frozenset({0, 1}), frozenset()),
        "b": Claim(7, frozenset(), frozenset()),
    }
    given = sticky(claims, range(4))
    assert given == {"a": [0, 1], "b": [2], "zombie": [3]}


def test_the_epoch_moves_on_with_every_assignment() -> None:
    group = Group(4)
    group.join("a")
    group.rebalance()
    assert group.members["a"].epoch == 1
    group.join("b")
    group.rebalance()
    assert {m.epoch for m in group.members.values()} == {2}


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b'{"owned": "x"}', None])
def test_user_data_of_another_version_claims_nothing(raw: bytes | None) -> None:
    assert Claim.decode(raw) == Claim(0, frozenset(), frozenset())


def test_a_member_of_the_previous_version_is_given_a_share() -> None:
    """A rolling upgrade: the old worker's metadata has no user data."""
    cluster = Cluster(dict.fromkeys(TOPICS, 4))
    new = CoPartitionAssignor()
    new.on_assignment(
        ConsumerProtocol.ASSIGNMENT(1, [(t, [0, 1, 2, 3]) for t in TOPICS], b'{"epoch": 4}')
    )
    metadata = {
        "new": ConsumerProtocol.METADATA.decode(new.metadata(TOPICS).encode()),
        "old": SimpleNamespace(subscription=TOPICS, user_data=b""),
    }
    given = new.assign(cluster, metadata)
    assert len(dict(given["old"].assignment)["web"]) == 2
    assert set(dict(given["new"].assignment)["web"]) <= {0, 1, 2, 3}


def _steps() -> st.SearchStrategy[list[tuple[str, str]]]:
    names = st.sampled_from(["a", "b", "c", "d", "e"])
    return st.lists(st.tuples(st.sampled_from(["join", "leave"]), names), max_size=12)


@settings(max_examples=150, deadline=None)
@given(partitions=st.integers(1, 16), steps=_steps())
def test_any_membership_history_stays_balanced_complete_and_sticky(
    partitions: int, steps: Iterable[tuple[str, str]]
) -> None:
    """Whatever joins and leaves: every member that stays keeps as many of its numbers as
    its new share allows (the share being the lower of the two counts)."""
    group = Group(partitions)
    group.join("a")
    before = group.rebalance()
    for action, name in steps:
        if action == "join" and name not in group.members:
            group.join(name)
        elif action == "leave" and name in group.members and len(group.members) > 1:
            group.leave(name)
        else:
            continue
        after = group.rebalance(leader=max(group.members))
        share = partitions // len(group.members)
        for member, numbers in after.items():
            had = set(before.get(member, ()))
            assert len(had & set(numbers)) >= min(len(had), share)
        before = after
