"""Partition *numbers* to workers: every input topic's partition n, and its stores, together;
and a number stays with the worker that has it when the group changes (sticky).

A person's records of every channel topic, their by-lead records and the tables that hold
their state share one partition number; the worker that owns number n must get partition n
of every input topic. The assignor says it outright, refuses (logs and leaves out) partitions
that only some topics have, and has a protocol name of its own, so a group with Faust-based
workers of earlier releases (whose assignor is "faust") refuses this worker instead of
splitting partitions with them.

aiokafka has no cooperative (incremental) protocol: every rebalance revokes every partition
of every member. What can still be spared is moving them. Each member tells the leader, in
its join metadata's user data, the numbers it was given last and in which assignment epoch,
and the numbers it has a store of on disk. The leader keeps every number with its owner of the
latest epoch as far as balance allows (counts differ by one at most), and hands the numbers it
must move, and those nobody owns, to members that have their store on disk first (they read
only the changelog records written since). A member whose epoch is older than another's was
left out of an assignment meanwhile (its numbers went to others): its claims do not count.
So a worker that joins takes a share from the others and nothing else moves; one that leaves
gives its numbers to the rest; the loop (`loop.py`) keeps the state of what it keeps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import orjson
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

log = logging.getLogger("leadstream.worker")


class Claim(NamedTuple):
    """What a member tells the leader when it joins (its metadata's user data)."""

    epoch: int
    """The assignment epoch of `owned` (0: it was never given anything)."""
    owned: frozenset[int]
    """The partition numbers it was given last."""
    stored: frozenset[int]
    """The partition numbers it has a store of on disk (cheaper to restore there)."""

    def encode(self) -> bytes:
        return orjson.dumps(
            {"epoch": self.epoch, "owned": sorted(self.owned), "stored": sorted(self.stored)}
        )

    @classmethod
    def decode(cls, raw: bytes | None) -> Claim:
        """A member's claim; an empty or unreadable one (a worker of an older version, whose
        user data is empty) claims nothing."""
        try:
            data = orjson.loads(raw) if raw else {}
            return cls(
                int(data.get("epoch", 0)),
                frozenset(int(n) for n in data.get("owned", ())),
                frozenset(int(n) for n in data.get("stored", ())),
            )
        except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError):
            return NO_CLAIM


NO_CLAIM = Claim(0, frozenset(), frozenset())


def spread(members: Iterable[str], numbers: Iterable[int]) -> dict[str, list[int]]:
    """Partition numbers to members who claim nothing: the counts differ by one at most, and
    the same members get the same answer."""
    return sticky({m: NO_CLAIM for m in members}, numbers)


def sticky(claims: Mapping[str, Claim], numbers: Iterable[int]) -> dict[str, list[int]]:
    """Partition numbers to members: balanced (counts differ by one at most), each number
    with its owner of the latest epoch where balance allows, moved or unowned numbers to a
    member that has them stored first. Deterministic: the same claims give the same answer."""
    order = sorted(claims)
    todo = sorted(set(numbers))
    if not order:
        return {}
    latest = max(c.epoch for c in claims.values())
    owner: dict[int, str] = {}
    for member in order:  # a number claimed twice in one epoch (never, but): the first keeps it
        if claims[member].epoch == latest and latest > 0:
            for n in sorted(claims[member].owned):
                owner.setdefault(n, member)
    owned: dict[str, list[int]] = {m: [] for m in order}
    for n in todo:
        if n in owner:
            owned[owner[n]].append(n)
    # Quotas: the members owning the most get the one extra where the counts cannot be equal.
    base, extra = divmod(len(todo), len(order))
    by_owned = sorted(order, key=lambda m: (-len(owned[m]), m))
    quota = {m: base + (1 if i < extra else 0) for i, m in enumerate(by_owned)}
    needy = [m for m in order if len(owned[m]) < quota[m]]

    def wanted_elsewhere(member: str, n: int) -> bool:
        return any(n in claims[o].stored for o in needy if o != member)

    given: dict[str, list[int]] = {}
    for m in order:
        # Over its quota: give up first what a member short of its quota has on disk.
        keep = sorted(owned[m], key=lambda n: (wanted_elsewhere(m, n), n))
        given[m] = sorted(keep[: quota[m]])
    taken = {n for ns in given.values() for n in ns}
    free = [n for n in todo if n not in taken]
    for n in free:
        room = [m for m in order if len(given[m]) < quota[m]]
        stored = [m for m in room if n in claims[m].stored]
        pick = min(stored or room, key=lambda m: (len(given[m]) - quota[m], m))
        given[pick].append(n)
    return {m: sorted(ns) for m, ns in given.items()}


class CoPartitionAssignor(AbstractPartitionAssignor):  # type: ignore[misc]
    """One per consumer (it remembers what its member was given last, for the next join).

    `stored` lists the partition numbers whose stores this process has on disk.
    """

    name = "leadstream-copartitioned"
    version = 1  # 0: user data empty, round robin (a group may mix both while it upgrades)

    def __init__(self, stored: Callable[[], Iterable[int]] = tuple) -> None:
        self.stored = stored
        self.epoch = 0
        self.owned: frozenset[int] = frozenset()

    def assign(
        self, cluster: Any, members: Mapping[str, Any]
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
        claims = {member: Claim.decode(meta.user_data) for member, meta in members.items()}
        epoch = max((c.epoch for c in claims.values()), default=0) + 1
        given = sticky(claims, numbers)
        moved = sum(
            1
            for m, ns in given.items()
            for n in ns
            if claims[m].epoch != epoch - 1 or n not in claims[m].owned
        )
        log.info(
            "assignment epoch %d: %d members, %d partition numbers, %d moved or new",
            epoch,
            len(members),
            len(numbers),
            moved,
        )
        user_data = orjson.dumps({"epoch": epoch})
        return {
            member: ConsumerProtocolMemberAssignment(
                self.version,
                sorted((t, given[member]) for t in meta.subscription if counts.get(t)),
                user_data,
            )
            for member, meta in members.items()
        }

    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        claim = Claim(self.epoch, self.owned, frozenset(self.stored()))
        return ConsumerProtocolMemberMetadata(self.version, list(topics), claim.encode())

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:
        self.owned = frozenset(n for _topic, ns in assignment.assignment for n in ns)
        self.epoch = Claim.decode(assignment.user_data).epoch
