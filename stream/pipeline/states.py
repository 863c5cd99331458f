"""Lead states as the pipeline reads and writes them: decoded once, written back once per landing.

Decoding a state costs more than scoring the event that needs it, and a busy lead is read by
many records of one batch, so decoded states are kept. What the pipeline changes is staged
(readable at once, written when the caller lands the batch, as `stream/pipeline/staging.py`
explains); what it has landed stays decoded in a bounded cache.

A cached state is *lent* to the pipeline while a batch uses it: the engine mutates states in
place, so a batch that is then not landed must not leave its changes in the cache. A lent state
comes back to the cache only when its write is taken for landing; anything the batch read and
did not write is decoded again next time, as it was before any cache. After a landing that the
caller did not write (a dropped batch), it must call `forget` for those partitions.

`MemoryStates` keeps plain objects, never encoded: `leadstream replay` and the reports, where
no table outlives the process.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, MutableMapping

from stream.scoring import LeadState

Where = tuple[int, str]  # (partition, lead id)


class EncodedStates:
    """States over per-partition tables of encoded bytes (RocksDB-backed, or dicts in tests),
    with up to `cache_size` landed states kept decoded (least recently used go first)."""

    def __init__(
        self, table_for: Callable[[int], MutableMapping[bytes, bytes]], cache_size: int = 50_000
    ):
        self.table_for = table_for
        self.cache_size = cache_size
        self.cache: OrderedDict[Where, LeadState] = OrderedDict()
        self.lent: dict[Where, LeadState] = {}
        self.pending: dict[Where, LeadState | None] = {}

    def get(self, partition: int, lead_id: str) -> LeadState | None:
        where = (partition, lead_id)
        if where in self.pending:
            return self.pending[where]
        state = self.lent.get(where)
        if state is not None:
            return state
        state = self.cache.pop(where, None)
        if state is None:
            raw = self.table_for(partition).get(lead_id.encode())
            if raw is None:
                return None
            state = LeadState.decode(raw)
        self.lent[where] = state
        return state

    def put(self, partition: int, lead_id: str, state: LeadState) -> None:
        self.pending[(partition, lead_id)] = state

    def delete(self, partition: int, lead_id: str) -> None:
        self.pending[(partition, lead_id)] = None

    def take(self) -> dict[Where, LeadState | None]:
        """The batch's writes, for the caller to land; the written states are kept decoded."""
        pending, self.pending = self.pending, {}
        self.lent.clear()
        cache = self.cache
        for where, state in pending.items():
            if state is not None:
                cache[where] = state
                cache.move_to_end(where)
            else:
                cache.pop(where, None)
        while len(cache) > self.cache_size:
            cache.popitem(last=False)
        return pending

    def write(self, pending: dict[Where, LeadState | None]) -> None:
        """Apply taken writes to the plain tables (replay over bytes, tests)."""
        for (partition, lead_id), state in pending.items():
            table = self.table_for(partition)
            if state is None:
                table.pop(lead_id.encode(), None)
            else:
                table[lead_id.encode()] = state.encode()

    def forget(self, keep: Iterable[int]) -> None:
        """Drop what is held for partitions not in `keep` (revoked, or to be read again)."""
        mine = set(keep)
        for held in (self.cache, self.lent, self.pending):
            for where in [w for w in held if w[0] not in mine]:
                del held[where]

    def __len__(self) -> int:
        """Decoded states held (the worker's metric)."""
        return len(self.cache) + len(self.lent)


class MemoryStates:
    """States as plain objects in one dict by lead id, for a single process's replay."""

    def __init__(self, states: dict[str, LeadState]):
        self.states = states
        self.pending: dict[Where, LeadState | None] = {}

    def get(self, partition: int, lead_id: str) -> LeadState | None:
        where = (partition, lead_id)
        if where in self.pending:
            return self.pending[where]
        return self.states.get(lead_id)

    def put(self, partition: int, lead_id: str, state: LeadState) -> None:
        self.pending[(partition, lead_id)] = state

    def delete(self, partition: int, lead_id: str) -> None:
        self.pending[(partition, lead_id)] = None

    def take(self) -> dict[Where, LeadState | None]:
        pending, self.pending = self.pending, {}
        return pending

    def write(self, pending: dict[Where, LeadState | None]) -> None:
        for (_partition, lead_id), state in pending.items():
            if state is None:
                self.states.pop(lead_id, None)
            else:
                self.states[lead_id] = state

    def forget(self, keep: Iterable[int]) -> None:
        self.pending = {w: s for w, s in self.pending.items() if w[0] in set(keep)}

    def __len__(self) -> int:
        return len(self.states)
