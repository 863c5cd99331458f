"""Table writes held back until a batch's records have landed, readable at once.

Later records of a batch must see the writes of earlier ones, but a table may only get a write
once every record the batch produced is acknowledged: if a state write landed and its handoff
did not, the repeated record would be a no-op after a crash (its offset is below the lead's
watermark) and the handoff would be lost.

Every write belongs to a partition. In the worker all partitions share one Faust table, which
picks the partition's store from the current event; in replay and in tests each partition may
have a plain dict of its own (`table_for`).
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Staged(Generic[K, V]):
    """One table's reads and pending writes by (partition, key)."""

    def __init__(self, table_for: Callable[[int], MutableMapping[K, V]]):
        self.table_for = table_for
        self.pending: dict[tuple[int, K], V | None] = {}

    def get(self, partition: int, key: K) -> V | None:
        where = (partition, key)
        if where in self.pending:
            return self.pending[where]
        return self.table_for(partition).get(key)

    def put(self, partition: int, key: K, value: V) -> None:
        self.pending[(partition, key)] = value

    def delete(self, partition: int, key: K) -> None:
        self.pending[(partition, key)] = None

    def take(self) -> dict[tuple[int, K], V | None]:
        """The pending writes, for the tables; reads go to the tables again from now on."""
        pending, self.pending = self.pending, {}
        return pending

    def write(self, pending: dict[tuple[int, K], V | None]) -> None:
        """Apply taken writes to plain per-partition tables (replay, tests)."""
        for (partition, key), value in pending.items():
            table = self.table_for(partition)
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value
