"""The batch worker's checkpoint: what its records produced, landed in one fixed order.

A checkpoint collects the outputs of the records processed since the last one (handoffs,
by-lead records, ledger entries, contact updates, account events, dead letters), the table
writes they staged, and which input records are finished. `commit()` lands them:

1. produce every output and wait until Kafka has acknowledged each one;
2. produce one changelog record per changed key and wait for those acks;
3. write each partition's changes to its RocksDB store in one write batch, with the
   changelog offsets they reach;
4. commit the input offsets (per partition: the first record not finished, else one past the
   last one fetched);
5. hand the changed leads, ledger entries and accounts to the Redis snapshot flusher.

Why this order: a state must never be stored (locally or in its changelog) before the outputs
it caused are acknowledged — after a crash the record comes again, finds its offset below the
lead's watermark and is a no-op, so an output lost then would be lost for good. Offsets commit
last, so a record whose state was not stored is read again. Redis comes after the commit so
that the lead API never shows a score the worker might still lose. A crash between any two
steps repeats records, which apply as no-ops; their outputs repeat with the same ids.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import orjson
from aiokafka.errors import CommitFailedError, KafkaError

from stream import metrics
from stream.pipeline.core import Landing, observe_since
from stream.pipeline.processor import Emit
from stream.scoring import AccountState, LeadState
from stream.topics import Topics
from stream.worker.outputs import Outgoing
from stream.worker.stores import Changes, changelog_topic, encode

log = logging.getLogger("leadstream.worker")
TP = tuple[str, int]  # (topic, partition); aiokafka's TopicPartition is such a tuple
NO_HEADERS: list[tuple[str, bytes]] = []  # shared by every output without headers: never changed


class Producer(Protocol):
    async def produce(self, records: Sequence[Outgoing]) -> dict[TP, int]: ...


class StateWriter(Protocol):
    def write(self, partition: int, changes: Changes, offsets: Mapping[str, int]) -> None: ...


class OffsetCommitter(Protocol):
    async def commit(self, offsets: Mapping[TP, int]) -> None: ...


class SnapshotSink(Protocol):
    def mark(self, lead_id: str, state: LeadState) -> None: ...
    def mark_account(self, account: AccountState) -> None: ...
    def absorb(self, visitor_id: str, lead_id: str) -> None: ...
    def add(self, emit: Emit) -> None: ...


@dataclass
class Staged:
    """A checkpoint's table writes, as the pipeline and the loop staged them."""

    landing: Landing
    due: dict[str, str | None]  # `<partition>:<minute>` -> leads (JSON), None deletes
    accounts: dict[int, dict[str, AccountState]] = field(default_factory=dict)


class Positions:
    """Per input partition: offsets fetched and not finished yet, and the next offset."""

    def __init__(self) -> None:
        self.open: dict[TP, set[int]] = {}
        self.next: dict[TP, int] = {}
        self.committed: dict[TP, int] = {}

    def fetched(self, tp: TP, offset: int) -> None:
        self.open.setdefault(tp, set()).add(offset)
        if offset >= self.next.get(tp, 0):
            self.next[tp] = offset + 1

    def fetched_all(self, tp: TP, offsets: list[int]) -> None:
        """`fetched` for a fetch's records of one partition at once (the loop's hot path)."""
        if not offsets:
            return
        self.open.setdefault(tp, set()).update(offsets)
        last = max(offsets)
        if last >= self.next.get(tp, 0):
            self.next[tp] = last + 1

    def finished(self, tp: TP, offset: int) -> None:
        pending = self.open.get(tp)
        if pending is not None:
            pending.discard(offset)

    def committable(self) -> dict[TP, int]:
        """What to commit per partition, where it moved since the last commit."""
        out = {}
        for tp, end in self.next.items():
            pending = self.open.get(tp)
            position = min(pending) if pending else end
            if self.committed.get(tp) != position:
                out[tp] = position
        return out

    def forget(self, keep: Iterable[TP] = ()) -> None:
        """After a rebalance: what this process held of other partitions is not its to commit."""
        mine = set(keep)
        for book in (self.open, self.next, self.committed):
            for tp in [tp for tp in book if tp not in mine]:
                del book[tp]


class Checkpoint:
    """Outputs, staged state and finished offsets since the last commit; `commit()` lands
    them in the order the module docstring gives."""

    def __init__(
        self,
        *,
        topics: Topics,
        producer: Producer,
        stores: StateWriter,
        offsets: OffsetCommitter,
        snapshots: SnapshotSink,
        take_staged: Callable[[], Staged],
        retry_seconds: float = 0.5,
    ):
        self.topics = topics
        self.producer = producer
        self.stores = stores
        self.offsets = offsets
        self.snapshots = snapshots
        self.take_staged = take_staged
        self.retry_seconds = retry_seconds
        self.positions = Positions()
        self.emits: list[Emit] = []
        self.records = 0  # input records finished since the last commit
        # by-lead partition -> offset after the last record this process produced there
        self.produced_next: dict[int, int] = {}

    def add(self, emit: Emit) -> None:
        """A processed record's (or timer's) emit; its finished records may be committed."""
        self.emits.append(emit)
        for done in emit.done:
            if done.offset >= 0:
                self.positions.finished((done.topic, done.partition), done.offset)
                self.records += 1

    def pending(self) -> bool:
        """Whether a commit has anything to do."""
        return bool(self.emits) or bool(self.positions.committable())

    def discard(self) -> None:
        """A lost assignment: nothing of this checkpoint is landed (its records come again to
        whoever owns their partitions now)."""
        self.take_staged()
        self.emits = []
        self.records = 0

    async def commit(self) -> None:
        """Land the checkpoint: outputs → acks → changelog records → acks → stores →
        offsets → Redis."""
        emits, self.emits, self.records = self.emits, [], 0
        staged = self.take_staged()
        acks = await self._produce(self._outputs(emits))
        by_lead = self.topics.by_lead
        for (topic, partition), last in acks.items():
            if topic == by_lead:
                self.produced_next[partition] = max(self.produced_next.get(partition, 0), last + 1)
        for emit in emits:
            for _key, _value, headers in emit.handoffs:
                received = dict(headers).get("ce_receivedat")
                observe_since(received.decode() if received else None, metrics.EVENT_TO_HANDOFF)
        changes = changed_tables(staged)
        written = await self._produce(self._changelog(changes))
        for partition, tables in changes.items():
            reached = {
                table: written[(changelog_topic(self.topics.prefix, table), partition)]
                for table, writes in tables.items()
                if writes
            }
            self.stores.write(partition, tables, reached)
        await self._commit_offsets()
        for (_p, lead_id), state in staged.landing.states.items():
            if state is not None:
                self.snapshots.mark(lead_id, state)
        for visitor_id, lead_id in staged.landing.absorbed:
            self.snapshots.absorb(visitor_id, lead_id)
        for accounts in staged.accounts.values():
            for account in accounts.values():
                self.snapshots.mark_account(account)
        for emit in emits:
            self.snapshots.add(emit)

    async def _produce(self, records: list[Outgoing]) -> dict[TP, int]:
        """Produce until every record is acknowledged: a failure repeats them all (handoffs
        repeat with the same ce_id, changelog records with the same value, by-lead records
        apply once), waiting longer each time."""
        delay = self.retry_seconds
        while True:
            if not records:
                return {}
            try:
                return await self.producer.produce(records)
            except KafkaError as exc:
                log.warning("producing failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _commit_offsets(self) -> None:
        offsets = self.positions.committable()
        if not offsets:
            return
        try:
            await self.offsets.commit(offsets)
        except CommitFailedError as exc:
            # The group is rebalancing or this member was removed: the revocation (or the
            # next owner) takes over; the records whose offsets did not commit come again.
            log.info("offsets not committed (%s); their records will be read again", exc)
            return
        except KafkaError as exc:
            log.warning("offsets not committed (%s); the next checkpoint tries again", exc)
            return
        self.positions.committed.update(offsets)

    def _outputs(self, emits: list[Emit]) -> list[Outgoing]:
        """Every output of `emits`, in order per kind. Built with `tuple.__new__`: a checkpoint
        makes one per output (several per record), and a NamedTuple's own `__new__` costs
        twice as much."""
        t = self.topics
        handoff, by_lead, deadletter = t.handoff, t.by_lead, t.deadletter
        ledger, accounts, account_events = t.ledger, t.accounts, t.account_events
        shadow = t.shadow
        new, dumps = tuple.__new__, orjson.dumps
        out: list[Outgoing] = []
        add = out.append
        for emit in emits:
            for key, value, headers in emit.handoffs:
                add(new(Outgoing, (handoff, key, value, headers, None)))
            for key, body, headers, home in emit.by_lead:
                add(new(Outgoing, (by_lead, key, dumps(body), headers, home)))
            for dl_key, dl_value, dl_headers in emit.deadletters:
                add(new(Outgoing, (deadletter, dl_key, dl_value, dl_headers, None)))
            for key, value in emit.ledger:
                add(new(Outgoing, (ledger, key, value, NO_HEADERS, None)))
            for key, value in emit.accounts:
                add(new(Outgoing, (accounts, key, value, NO_HEADERS, None)))
            for key, value, headers in emit.account_events:
                add(new(Outgoing, (account_events, key, value, headers, None)))
            for key, value, headers in emit.shadow:
                add(new(Outgoing, (shadow, key, value, headers, None)))
        return out

    def _changelog(self, changes: dict[int, Changes]) -> list[Outgoing]:
        prefix, new = self.topics.prefix, tuple.__new__
        out: list[Outgoing] = []
        for partition, tables in changes.items():
            for table, writes in tables.items():
                topic = changelog_topic(prefix, table)
                out += [
                    new(Outgoing, (topic, key, value, NO_HEADERS, partition))
                    for key, value in writes.items()
                ]
        return out


def changed_tables(staged: Staged) -> dict[int, Changes]:
    """Each partition's table writes as the changelog and the store hold them (encoded once)."""
    out: dict[int, Changes] = {}

    def table(partition: int, name: str) -> dict[bytes, bytes | None]:
        tables = out.get(partition)
        if tables is None:
            tables = out[partition] = {}
        writes = tables.get(name)
        if writes is None:
            writes = tables[name] = {}
        return writes

    landing = staged.landing
    states: dict[int, dict[bytes, bytes | None]] = {}
    for (partition, lead_id), state in landing.states.items():
        writes = states.get(partition)
        if writes is None:
            writes = states[partition] = table(partition, "lead_state")
        writes[lead_id.encode()] = None if state is None else state.encode()
    for name, pending in (("aliases", landing.aliases), ("merges", landing.merges)):
        for (partition, key), value in pending.items():
            k, v = encode(name, key, value)
            table(partition, name)[k] = v
    for key, value in staged.due.items():
        k, v = encode("tick_due", key, value)
        table(int(key.split(":", 1)[0]), "tick_due")[k] = v
    for partition, accounts in staged.accounts.items():
        writes = table(partition, "accounts")
        for account_id, account in accounts.items():
            writes[account_id.encode()] = account.encode()
    return out
