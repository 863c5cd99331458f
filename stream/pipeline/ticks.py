"""Daily ticks for leads that get no events, driven by each partition's stream time.

A lead that needs a tick (an MQL whose engagement may decay away) is filed under the instant
of its next tick in the `tick_due` table, keyed `<partition>:<minute>`. When the partition's
stream time (the largest event time seen on it, or the wall clock after an idle while) passes
that instant, the leads filed there are ticked and re-filed. No lead is scanned that does not
need a tick; only the small due-table is read, once per partition after (re)assignment.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, MutableMapping

import orjson

MINUTES_PER_DAY = 1440


def due_minute(t_days: float) -> int:
    """The whole minute at or after an instant: a lead is filed no earlier than it is due,
    so ticking it at that minute fires what is due (daily ticks sit on whole minutes; SLA
    deadlines need not)."""
    return math.ceil(round(t_days * MINUTES_PER_DAY, 6))


def due_key(partition: int, t_days: float) -> str:
    return f"{partition}:{due_minute(t_days)}"


class TickScheduler:
    """`due` maps `<partition>:<minute>` to a JSON list of lead ids (a string: the format the
    `tick_due` changelog has always held)."""

    def __init__(self, due: MutableMapping[str, str]):
        self.due = due
        self.heaps: dict[int, list[int]] = {}  # partition -> heap of due minutes
        self.stream_time: dict[int, float] = {}

    def _heap(self, partition: int) -> list[int]:
        heap = self.heaps.get(partition)
        if heap is None:
            prefix = f"{partition}:"
            heap = [int(k[len(prefix) :]) for k in self._keys() if k.startswith(prefix)]
            heapq.heapify(heap)
            self.heaps[partition] = heap
        return heap

    def _keys(self) -> Iterable[str]:
        return list(self.due.keys())

    def forget_partitions(self) -> None:
        """After a rebalance every partition is read again from its committed offset: the
        heaps are rebuilt from the table on first use, and stream time starts again from the
        records (kept, it would be ahead of records that apply again after a dropped batch,
        and fire their leads' ticks before them, unlike replay)."""
        self.heaps.clear()
        self.stream_time.clear()

    def schedule(self, partition: int, lead_id: str, t_days: float) -> None:
        key = due_key(partition, t_days)
        leads = _leads(self.due.get(key))
        if lead_id not in leads:
            self.due[key] = orjson.dumps([*leads, lead_id]).decode()
            heap = self._heap(partition)
            minute = due_minute(t_days)
            if minute not in heap:
                heapq.heappush(heap, minute)

    def advance(self, partition: int, t_days: float) -> list[tuple[float, list[str]]]:
        """Move stream time forward; return (instant, leads) whose tick instant it passed.

        "Passed" is strict: an event stamped exactly at a tick instant is applied before that
        tick, as in the scoring model and in `leadstream replay`.
        """
        now = self.stream_time.get(partition, t_days)
        if t_days > now:
            now = t_days
        self.stream_time[partition] = now
        heap = self.heaps.get(partition)
        if heap is None:
            heap = self._heap(partition)
        if not heap or heap[0] / MINUTES_PER_DAY >= now:
            return []
        fired: list[tuple[float, list[str]]] = []
        while heap and heap[0] / MINUTES_PER_DAY < now:
            minute = heapq.heappop(heap)
            key = f"{partition}:{minute}"
            leads = _leads(self.due.pop(key, None))
            if leads:
                fired.append((minute / MINUTES_PER_DAY, leads))
        return fired


def _leads(raw: str | None) -> list[str]:
    return [] if not raw else [str(x) for x in orjson.loads(raw)]
