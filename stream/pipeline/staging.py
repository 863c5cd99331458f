"""Table writes held back until a batch's records have landed, readable at once.

Later records of a batch must see the writes of earlier ones, but a table may only get a write
once every record the batch produced is acknowledged: if a state write landed and its handoff
did not, the repeated record would be a no-op after a crash (its offset is below the lead's
watermark) and the handoff would be lost.

Every write belongs to a partition: in the worker each partition's table is a view of that
partition's store; in replay and in tests a plain dict (`table_for`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Staged(Generic[K, V]):
    """One table's reads and pending writes by (partition, key)."""

    def __init__(self, table_for: Callable[[int], MutableMapping[K, V]]):
        self.table_for = table_for
        self.pending: dict[tuple[int, K], V | None] = {}

    def get(self, partition: int, key: K) -> V | None:
        pending = self.pending
        if pending:
            where = (partition, key)
            if where in pending:
                return pending[where]
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


class StagedMapping(MutableMapping[str, str]):
    """A table as a mapping whose writes wait for the batch to land (the tick schedule: a
    tick fired in a batch that is then dropped must still be due when its records come
    again). Keys carry their partition (`<partition>:…`)."""

    def __init__(self, table: MutableMapping[str, str]):
        self.table = table
        self.pending: dict[str, str | None] = {}

    def __getitem__(self, key: str) -> str:
        if key in self.pending:
            value = self.pending[key]
            if value is None:
                raise KeyError(key)
            return value
        return self.table[key]

    def __setitem__(self, key: str, value: str) -> None:
        self.pending[key] = value

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self.pending[key] = None

    def __iter__(self) -> Iterator[str]:
        deleted = {k for k, v in self.pending.items() if v is None}
        added = [k for k, v in self.pending.items() if v is not None and k not in self.table]
        return iter([*(k for k in self.table if k not in deleted), *added])

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def take(self) -> dict[str, str | None]:
        """The pending writes, for the table; None deletes."""
        pending, self.pending = self.pending, {}
        return pending
