"""The batch worker's consume loop: fetch, order, process, fire timers, checkpoint.

One task owns the consumer. Each round it takes what `getmany` has fetched from the channel
topics, `leads.events.by_lead` and `leads.accounts` of the partitions this process owns, holds
each partition's records in the co-partition merge (`order.py`) and processes those the merge
releases through the pipeline; contact updates go to the account step directly. Then it fires
what is due by time — records held for order whose wait is over, merges past their timeout, the
stream time of idle partitions — and lands a checkpoint when enough records are finished or
nothing more is waiting in the fetch buffer. Nothing travels through Kafka to wake it.

"Caught up" (may a held record go before an input that has nothing waiting?) is judged from
public client state only: the next offset this loop was handed for the input, the high-water
mark of the last fetch answer for it (`highwater`), answered after the held record was fetched
(`last_poll_timestamp`), and the offsets of by-lead records this process produced itself.

Rebalances: aiokafka revokes every partition at every rebalance (it has no cooperative
protocol), but the assignor (`assignor.py`) gives a worker back what it had wherever balance
allows. The revocation waits for the round in progress and commits the checkpoint; what the
loop holds stays until the assignment says which partitions are still its own. An assignment
keeps the in-memory state of the partitions this worker had and gets back (held and parked
records, decoded states, stream time, positions: their fetch goes on where it was) when
nobody else can have had them meanwhile (their committed offsets are the ones this worker
committed and their changelogs have nothing its stores lack), and reads on with them at once;
it drops what is no longer its own (those records come again, from the committed offsets, to
their owner), and restores the stores of the partitions that are new to it from the
changelogs while the kept ones go on, before their records are read. A lost assignment (the
commit is refused: this member was removed from the group) lands nothing and keeps nothing.
The callbacks' changes to what the loop holds run under its lock, and no round processes
anything from a revocation to the next assignment, so a round never sees half a rebalance.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from stream.pipeline.core import Pipeline
from stream.pipeline.processor import AccountStep, Record, channel_source
from stream.pipeline.ticks import TickScheduler
from stream.scoring import AccountState, Model
from stream.topics import Topics
from stream.worker.checkpoint import Checkpoint
from stream.worker.order import CoPartitionMerge
from stream.worker.stores import Stores

log = logging.getLogger("leadstream.worker")
IDLE_POLL_MS = 100  # nothing held: how long a fetch may wait for records
HELD_POLL_MS = 5  # records held for order: look again soon (a fetch answer may release them)
TIMER_SECONDS = 1.0  # how often merges and idle partitions are looked at
ROUND_MAX = 500  # records processed in one round, between two turns of the event loop
HELD_MAX = 4 * ROUND_MAX  # held for order: then fetch only the inputs the merge has none of


class ConsumeLoop:
    """getmany → co-partition merge → pipeline → checkpoint, and the rebalance callbacks."""

    def __init__(
        self,
        *,
        consumer: AIOKafkaConsumer,
        topics: Topics,
        pipeline: Pipeline,
        checkpoint: Checkpoint,
        ticks: TickScheduler,
        stores: Stores,
        restore: Callable[[list[int]], Awaitable[int]],
        model: Model,
        staged_accounts: dict[int, dict[str, AccountState]],
        checkpoint_max: int,
        order_wait_seconds: float,
        idle_tick_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ):
        self.consumer = consumer
        self.topics = topics
        self.pipeline = pipeline
        self.checkpoint = checkpoint
        self.ticks = ticks
        self.stores = stores
        self.restore = restore
        self.model = model
        self.checkpoint_max = checkpoint_max
        self.idle_tick_seconds = idle_tick_seconds
        self.clock = clock
        self.wall = wall
        self.inputs = [*topics.channel_topics, topics.by_lead]
        self.order: CoPartitionMerge[Record] = CoPartitionMerge(
            self.inputs, order_wait_seconds, clock
        )
        self.lock = asyncio.Lock()
        self.generation = 0  # moves at every revocation and assignment
        self.owned: set[int] = set()  # partition numbers whose stores are restored
        self.kept: set[int] = set()  # of those, whose state the last assignment kept
        self.delivered: dict[tuple[str, int], int] = {}  # next offset handed to the loop
        self.last_seen: dict[int, float] = {}  # partition -> when its last record came
        self.accounts: dict[int, AccountStep] = {}
        self.staged_accounts = staged_accounts  # partition -> account id -> this checkpoint's
        self.timers_at = 0.0
        self.released = 0  # records the merge let go in the last round
        self.turn = 0  # which waiting partition goes first in the next release
        self.rebalancing = True  # from a revocation (or the start) to the next assignment
        self.restoring = False
        self.stopping = False

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Rounds until `stop()`; the checkpoint is landed before it returns."""
        while not self.stopping:
            await self.round()
        async with self.lock:
            if self.checkpoint.pending():
                await self.checkpoint.commit()

    def stop(self) -> None:
        self.stopping = True

    async def round(self) -> None:
        generation = self.generation
        held = self.order.held > 0 or bool(self.pipeline.waiting_since)
        # Everything fetched so far (the client buffers one fetch per partition), so each
        # partition's inputs are all there to be merged; with plenty held already, only the
        # inputs the merge has nothing of (one of them may be what it waits for).
        wanted = [] if self.rebalancing else self._wanted()
        try:
            if wanted is None:
                batch: dict[TopicPartition, list[Any]] = {}
                await asyncio.sleep(0)
            else:
                batch = await self.consumer.getmany(
                    *wanted, timeout_ms=HELD_POLL_MS if held else IDLE_POLL_MS
                )
        except KafkaError as exc:
            log.warning("fetch failed (%r); trying again", exc)
            await asyncio.sleep(1.0)
            return
        async with self.lock:
            if generation != self.generation or self.rebalancing:
                self._fetch_again(batch)
                return
            for tp, records in batch.items():
                self._take(tp, records)
            self.released = self._release()
            self._timers()
            # Land when the checkpoint is full, or when the loop is not saturated (the merge
            # let go less than a round's share: nothing more waits right now): a busy loop
            # shares acks and writes across many records, one that keeps up adds no delay.
            checkpoint = self.checkpoint
            saturated = self.released >= ROUND_MAX
            if checkpoint.records >= self.checkpoint_max or (
                not saturated and checkpoint.pending()
            ):
                await checkpoint.commit()

    def _wanted(self) -> list[TopicPartition] | None:
        """What to fetch: every partition ([]) while the merge holds little; else the
        assigned partitions it holds nothing of (None: it holds some of every one)."""
        order = self.order
        if order.held < HELD_MAX:
            return []
        starved = [
            tp for tp in self.consumer.assignment() if not order.queued(tp.topic, tp.partition)
        ]
        return starved or None

    def _take(self, tp: TopicPartition, records: list[Any]) -> None:
        topic, partition = tp.topic, tp.partition
        positions = self.checkpoint.positions
        if topic == self.topics.accounts:
            step = self.accounts[partition]
            staged = self.staged_accounts.setdefault(partition, {})
            positions.fetched_all(tp, [r.offset for r in records])
            for r in records:
                record = _record(r, None, 0)
                emit, account = step.process(record)
                if account is not None:
                    staged[account.account_id] = account
                emit.done.append(record)
                self.checkpoint.add(emit)
            return
        polled = self.consumer.last_poll_timestamp(tp) or 0
        source = None if topic == self.topics.by_lead else channel_source(topic, partition)
        positions.fetched_all(tp, [r.offset for r in records])
        held: list[tuple[int, Record]] = []
        for r in records:
            record = Record(
                r.topic,
                partition,
                r.offset,
                r.key,
                r.value or b"",
                list(r.headers) if r.headers else [],
                source,
                fetched_ms=polled,
            )
            stamp = _accepted_at(record) if r.headers else None
            if stamp is None:
                # Not from a collector (tests, the bench, older producers): the record's own
                # timestamp orders it, and travels on with what it causes, as a collector's
                # stamp would (a by-lead answer must not sort after records accepted later).
                stamp = int(r.timestamp) * 1000
                record.headers.append(("accepted_at", str(stamp).encode()))
            held.append((stamp, record))
        self.order.add_all(topic, partition, held)
        self.delivered[tp] = records[-1].offset + 1
        self.last_seen[partition] = self.clock()

    def _release(self) -> int:
        """Process what the merge lets go, at most ROUND_MAX records a round (a round must
        not keep the event loop, and with it the group heartbeat, for long), partitions
        taking turns to go first. Returns how many went."""
        waiting = sorted(p for p in self.order.waiting() if p in self.owned)
        if not waiting:
            return 0
        self.turn = (self.turn + 1) % len(waiting)
        budget = ROUND_MAX
        process, add, release = self.pipeline.process, self.checkpoint.add, self.order.release
        for partition in waiting[self.turn :] + waiting[: self.turn]:
            for record in release(partition, self._caught_up(partition), budget):
                add(process(record))
                budget -= 1
            if budget <= 0:
                break
        return ROUND_MAX - budget

    def _caught_up(self, partition: int) -> Callable[[str, Record], bool]:
        """Whether this loop has been handed everything `topic` had in `partition` as of a
        fetch answered after `head` was fetched (and every by-lead record this process
        produced there): then nothing accepted before the head can still come from it.
        Answers are kept for the release they serve (nothing fetches meanwhile)."""
        known: dict[tuple[str, int], bool] = {}
        consumer, by_lead = self.consumer, self.topics.by_lead

        def caught_up(topic: str, head: Record) -> bool:
            asked = (topic, head.fetched_ms)
            answer = known.get(asked)
            if answer is None:
                tp = TopicPartition(topic, partition)
                answer = False
                delivered = self.delivered.get(tp)
                try:
                    polled = consumer.last_poll_timestamp(tp)
                    highwater = consumer.highwater(tp)
                except (AssertionError, IllegalStateError):  # not assigned (any more)
                    polled = highwater = None
                if (
                    delivered is not None
                    and polled is not None
                    and highwater is not None
                    and polled >= head.fetched_ms
                ):
                    if topic == by_lead:
                        highwater = max(highwater, self.checkpoint.produced_next.get(partition, 0))
                    answer = delivered >= highwater
                known[asked] = answer
            return answer

        return caught_up

    def _timers(self) -> None:
        """Merges past their timeout, and the stream time of idle partitions (the wall
        clock after `idle_tick_seconds` without records), at most every TIMER_SECONDS."""
        now = self.clock()
        if now - self.timers_at < TIMER_SECONDS:
            return
        self.timers_at = now
        pipeline, add = self.pipeline, self.checkpoint.add
        for partition in {p for p, _lead in pipeline.waiting_since}:
            if partition in self.owned and pipeline.overdue(partition):
                add(pipeline.expire(partition))
        idle = self.idle_tick_seconds
        if idle <= 0:
            return
        held = set(self.order.waiting())
        for partition in self.owned - held:
            if now - self.last_seen.get(partition, now) >= idle:
                self.last_seen[partition] = now
                add(pipeline.advance_clock(partition, int(self.wall() * 1_000_000)))

    def _fetch_again(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """A batch fetched across a rebalance is not processed: partitions still (or newly)
        assigned are read again from its first record (their positions moved past it)."""
        mine = self.consumer.assignment()
        for tp, records in batch.items():
            if records and tp in mine:
                try:
                    self.consumer.seek(tp, records[0].offset)
                except IllegalStateError:
                    continue

    # -- rebalances ----------------------------------------------------------------------

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Finish the round in progress and commit the checkpoint (unless the assignment was
        lost). What the loop holds stays until `on_assigned` says what is still its own; no
        round processes anything meanwhile."""
        self.rebalancing = True
        async with self.lock:
            self.generation += 1
            if not self.owned:
                self._forget(())
                return
            try:
                if await self._still_member():
                    await self.checkpoint.commit()
                    return
                log.warning(
                    "partitions %s were lost (this worker left the group): dropping what "
                    "it processed since its last checkpoint",
                    sorted(self.owned),
                )
                self.checkpoint.discard()
            except Exception:
                # The records of what did not land come again, to whoever owns them now.
                log.exception("the checkpoint could not be landed before the revocation")
                self.checkpoint.discard()
            self._forget(())

    async def _still_member(self) -> bool:
        """Whether this process may still commit for its assignment: a commit of what it
        committed last is accepted only from a member of the current generation."""
        try:
            await self.consumer.commit(dict(self.checkpoint.positions.committed))
        except CommitFailedError:
            return False
        except KafkaError as exc:  # the coordinator is away: the real commit will tell
            log.info("membership check failed (%r); committing the checkpoint anyway", exc)
        return True

    def _forget(self, keep: set[int] | tuple[()]) -> None:
        """Drop what the loop holds of every partition number not in `keep`: held and parked
        records (they come again from the committed offsets), decoded states, positions."""
        mine = set(keep)
        self.owned &= mine
        self.order.drop(mine)
        self.pipeline.forget_partitions(mine)
        _forget_ticks(self.ticks, mine)
        positions = self.checkpoint.positions
        positions.forget([tp for tp in positions.next if tp[1] in mine])
        for tp in [tp for tp in self.delivered if tp[1] not in mine]:
            del self.delivered[tp]
        self.staged_accounts.clear()

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """Keep what the loop holds of the partitions it had and still has, and read on with
        them at once; then restore the stores of the new ones (paused until then) while the
        kept ones go on, and read on with those too."""
        tps = list(assigned)
        self.consumer.pause(*tps)  # before anything awaits: no record of them is fetched
        async with self.lock:
            self.generation += 1
            numbers = sorted({tp.partition for tp in tps})
            began = self.clock()
            kept = self.kept = await self._kept(tps, numbers)
            checked = self.clock() - began
            self._forget(kept)
            released = [p for p in self.stores.partitions() if p not in numbers]
            gained = [p for p in numbers if p not in kept]
            self.restoring = bool(gained)
            positions = self.checkpoint.positions
            ours = [tp for tp in tps if tp.partition in kept]
            for tp in ours:
                self.consumer.seek(tp, positions.next[tp])  # on from where the loop was
            self._own(kept)
            # A wait for an input that is behind starts again: the rebalance held it up.
            self.order.blocked.clear()
            self.consumer.resume(*ours)
            self.rebalancing = False
        log.info(
            "reading on with partitions %s (kept; checked in %.2fs); restoring %s",
            sorted(kept),
            checked,
            gained,
        )
        # The rounds go on with the kept partitions meanwhile: these stores are not theirs.
        # (No rebalance callback runs before this one returns.)
        await asyncio.gather(self._close(released), self._restore(gained))
        async with self.lock:
            new = [tp for tp in tps if tp.partition not in kept]
            for tp in new:
                # Where this assignment starts: what the group committed (or the beginning).
                start = await self.consumer.position(tp)
                positions.next[tp] = positions.committed[tp] = start
                if tp.topic in self.inputs:
                    self.delivered[tp] = start
            self._own(gained)
            for partition in gained:
                self.last_seen[partition] = self.clock()
            self.consumer.resume(*new)
        log.info("assigned partitions %s: kept %s, restored %s", numbers, sorted(kept), gained)

    def _own(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self.owned.add(partition)
            view = _StagedAccounts(self.stores, partition, self.staged_accounts)
            self.accounts[partition] = AccountStep(view, self.model)

    async def _close(self, partitions: list[int]) -> None:
        """Close the stores of partitions no longer this worker's, each in a thread: a close
        flushes its write buffers (0.1-0.2 s a store on a busy machine, measured), which held
        every partition up when the loop did it."""
        for partition in partitions:
            store = self.stores.open.pop(partition, None)
            if store is not None:
                await asyncio.to_thread(store.close)

    async def _kept(self, tps: list[TopicPartition], numbers: list[int]) -> set[int]:
        """The partition numbers this loop still holds the state of and gets again, whose
        state nobody else can have changed meanwhile: every input's committed offset is the
        one it committed itself, and the changelogs hold nothing its stores lack (both asked
        at once: the second is another client's)."""
        kept = self.owned & set(numbers)
        if not kept:
            return set()
        positions = self.checkpoint.positions
        ours = [tp for tp in tps if tp.partition in kept]

        # Asked of the group directly: a position waits for the client to reset it, which
        # took twice as long (bench logs: 0.06-0.37 s against 0.04-0.2 s).
        committed = asyncio.gather(*(self.consumer.committed(tp) for tp in ours))
        starts, restored = await asyncio.gather(committed, self._restore(sorted(kept)))
        for tp, start in zip(ours, starts, strict=True):
            if tp not in positions.next or start != positions.committed.get(tp):
                kept.discard(tp.partition)
        if restored:
            log.warning(
                "partitions %s: their changelogs had records this worker's stores lacked "
                "(another worker had them meanwhile): reading them again",
                sorted(self.owned & set(numbers)),
            )
            return set()
        return kept

    async def _restore(self, partitions: list[int]) -> int:
        """Restore the stores, trying again while Kafka fails: the partitions stay paused
        (and this worker not ready) until their state is complete. Returns the changelog
        records applied."""
        if not partitions:
            return 0
        self.restoring = True
        delay = 0.5
        try:
            while True:
                try:
                    return await self.restore(partitions)
                except KafkaError as exc:
                    log.warning("restoring %s failed (%r); trying again", partitions, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
        finally:
            self.restoring = False


class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """aiokafka's rebalance callbacks, handed to the loop."""

    def __init__(self, loop: ConsumeLoop):
        self.loop = loop

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.loop.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.loop.on_assigned(set(assigned))


class _StagedAccounts(MutableMapping[bytes, bytes]):
    """A partition's accounts as the account step reads them: this checkpoint's staged
    accounts first (read your own writes), then the store."""

    def __init__(self, stores: Stores, partition: int, staged: dict[int, dict[str, AccountState]]):
        self.stores = stores
        self.partition = partition
        self.staged = staged

    def __getitem__(self, key: bytes) -> bytes:
        account = self.staged.get(self.partition, {}).get(key.decode())
        if account is not None:
            return account.encode()
        raw = self.stores[self.partition].get("accounts", key)
        if raw is None:
            raise KeyError(key)
        return raw

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.stores[self.partition].keys("accounts"))

    def __len__(self) -> int:
        return self.stores[self.partition].count("accounts")

    def __setitem__(self, key: bytes, value: bytes) -> None:
        raise TypeError("accounts are staged by the loop and written by the checkpoint")

    def __delitem__(self, key: bytes) -> None:
        raise TypeError("accounts are staged by the loop and written by the checkpoint")


def _forget_ticks(ticks: TickScheduler, keep: set[int]) -> None:
    """`TickScheduler.forget_partitions` for the partitions not in `keep`: a kept partition's
    records are not read again, so its stream time stays where its records took it."""
    if not keep:
        ticks.forget_partitions()
        return
    for book in (ticks.heaps, ticks.stream_time):
        for partition in [p for p in book if p not in keep]:
            del book[partition]


def _record(r: Any, source: int | None, fetched_ms: int) -> Record:
    return Record(
        r.topic,
        r.partition,
        r.offset,
        r.key,
        r.value or b"",
        list(r.headers or ()),
        source,
        fetched_ms=fetched_ms,
    )


def _accepted_at(record: Record) -> int | None:
    """The collector's acceptance stamp (µs), which orders a partition's inputs; by-lead
    records carry the stamp of the record they came from."""
    for key, value in record.headers:
        if key == "accepted_at":
            text = value.decode("ascii", "replace")
            return int(text) if text.isdigit() else None
    return None
