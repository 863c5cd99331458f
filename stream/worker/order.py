"""Acceptance order across co-partitioned input topics.

One person's events arrive in one partition number of several topics (`leads.events.web`,
`.email`, `.social`, `.crm`, and `leads.events.by_lead`). Kafka orders each topic partition on
its own; the consumer fetches them in whatever order its fetches return. So that a person's
email click and page view apply in the order the collector accepted them, the worker holds
each partition number's records here and releases them by their acceptance stamp (the
collector's `accepted_at` header, microseconds, strictly increasing per collector process),
the way Kafka Streams synchronises co-partitioned inputs (`max.task.idle.ms`).

The record with the smallest stamp among the heads goes when every other input of its
partition number either has a record waiting here (whose stamp is then larger) or is *caught
up*: everything it had, as of a fetch made after the head itself was fetched, has been handed
over (the caller's `caught_up(topic, head)`). Anything a person sent before the head was in
the log before the head was, so such a fetch sees it. An
input that is behind is waited for, at most `max_wait` seconds from the moment it first held
the partition up; then the heads go anyway, counted as timeouts, until nothing holds the
partition up any more. (From when the wait began, not from when the head arrived: a batch
consumer holds thousands of records at a time, and a record that sat in the queue behind
others has not been waiting for the input that is behind.) A person's records sent one
after another (each acknowledged before the next is sent, as SDKs do) are therefore applied in
acceptance order; records sent concurrently have no order to keep.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from stream import metrics

T = TypeVar("T")
READY = metrics.ORDER_HELD.labels(why="ready")
TIMEOUT = metrics.ORDER_HELD.labels(why="timeout")


class CoPartitionMerge(Generic[T]):
    """Per partition number: one queue per input topic, released by (stamp, topic rank)."""

    def __init__(
        self,
        topics: Iterable[str],
        max_wait: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.rank = {topic: i for i, topic in enumerate(topics)}
        self.max_wait = max_wait
        self.clock = clock
        # partition -> topic -> queue of (stamp, arrived, item)
        self.queues: dict[int, dict[str, deque[tuple[int, float, T]]]] = {}
        self.held = 0  # records held, all partitions
        self.blocked: dict[int, float] = {}  # partition -> since when an input holds it up

    def add(self, topic: str, partition: int, stamp: int, item: T) -> None:
        queues = self.queues.setdefault(partition, {})
        queues.setdefault(topic, deque()).append((stamp, self.clock(), item))
        self.held += 1

    def add_all(self, topic: str, partition: int, items: list[tuple[int, T]]) -> None:
        """`add` for one fetch's records of one topic partition, (stamp, item) in offset
        order: one clock reading for them all (they arrived together)."""
        queue = self.queues.setdefault(partition, {}).setdefault(topic, deque())
        arrived = self.clock()
        queue.extend([(stamp, arrived, item) for stamp, item in items])
        self.held += len(items)

    def release(
        self, partition: int, caught_up: Callable[[str, T], bool], limit: int | None = None
    ) -> list[T]:
        """The records of `partition` that may go now (at most `limit`), in acceptance order."""
        queues = self.queues.get(partition)
        out: list[T] = []
        timeouts = 0
        while queues and (limit is None or len(out) < limit):
            verdict = self._verdict(partition, queues, caught_up)
            if verdict is None:
                break
            topic, timed_out = verdict
            timeouts += timed_out
            out.append(queues[topic].popleft()[2])
        if out:  # counted once per release: a counter's lock costs ~1 µs per call
            READY.inc(len(out) - timeouts)
            TIMEOUT.inc(timeouts)
        self.held -= len(out)
        return out

    def ready(self, partition: int, caught_up: Callable[[str, T], bool]) -> bool:
        """Whether `release` would hand out a record now (nothing is taken)."""
        queues = self.queues.get(partition)
        return bool(queues) and self._verdict(partition, queues or {}, caught_up) is not None

    def _verdict(
        self,
        partition: int,
        queues: dict[str, deque[tuple[int, float, T]]],
        caught_up: Callable[[str, T], bool],
    ) -> tuple[str, bool] | None:
        """(topic of the head that may go, whether only because the wait is over), or None."""
        head = self._head(queues)
        if head is None:
            self.blocked.pop(partition, None)
            return None
        topic, (_stamp, _arrived, item) = head
        blocked = any(
            t != topic and not queues.get(t) and not caught_up(t, item) for t in self.rank
        )
        if not blocked:
            self.blocked.pop(partition, None)
            return topic, False
        now = self.clock()
        if now - self.blocked.setdefault(partition, now) >= self.max_wait:
            return topic, True
        return None

    def _head(
        self, queues: dict[str, deque[tuple[int, float, T]]]
    ) -> tuple[str, tuple[int, float, T]] | None:
        best: tuple[str, tuple[int, float, T]] | None = None
        for topic, queue in queues.items():
            if not queue:
                continue
            if best is None or (queue[0][0], self.rank[topic]) < (best[1][0], self.rank[best[0]]):
                best = (topic, queue[0])
        return best

    def queued(self, topic: str, partition: int) -> int:
        """Records of `topic` held for `partition`."""
        queue = self.queues.get(partition, {}).get(topic)
        return len(queue) if queue else 0

    def waiting(self) -> list[int]:
        """Partitions with records held."""
        return [p for p, queues in self.queues.items() if any(queues.values())]

    def overdue(self, partition: int) -> bool:
        """Whether an input behind has held `partition` up for `max_wait`."""
        since = self.blocked.get(partition)
        return since is not None and self.clock() - since >= self.max_wait

    def drop(self, keep: Iterable[int]) -> None:
        """After a rebalance: records of partitions no longer ours are not processed here."""
        mine = set(keep)
        for partition in list(self.queues):
            if partition not in mine:
                self.held -= sum(len(q) for q in self.queues[partition].values())
                del self.queues[partition]
                self.blocked.pop(partition, None)
