"""Handoff consumer: two lanes so P1 never waits behind routine work; commits only what settled.

Records are fetched by one loop and put on the fast lane (P1) or the routine lane (P2, P3, or
no priority). Each lane has its own workers, so a stalled or failing sink that keeps routine
workers busy with timeouts and retries leaves the fast lane's workers free.

A record is *settled* when every sink its routes name has delivered it, found it already
delivered (idempotency), parked it on the persisted delivery schedule (`dispatch.py`, so a
receiver outage never holds the commit), or dead-lettered it. Per partition the committed
offset is the lowest offset not yet settled (or one past the highest seen): a crash redelivers
whatever was still open, and idempotency turns the redelivery of what had in fact gone out
into a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, KafkaError

from stream.errors import LeadstreamError
from stream.metrics import DELIVERIES_PENDING, EVENT_TO_DELIVERY
from stream.notify import NotifierConfig
from stream.notify.dispatch import FAST, ROUTINE, Dispatcher, persist
from stream.notify.sinks import Handoff
from stream.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class OffsetTracker:
    """Per partition: offsets fetched but not settled, and the next offset to commit."""

    def __init__(self) -> None:
        self._pending: dict[TopicPartition, set[int]] = {}
        self._next: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}

    def add(self, tp: TopicPartition, offset: int) -> None:
        self._pending.setdefault(tp, set()).add(offset)
        self._next[tp] = max(self._next.get(tp, 0), offset + 1)

    def settle(self, tp: TopicPartition, offset: int) -> None:
        pending = self._pending.get(tp)
        if pending is not None:
            pending.discard(offset)

    def position(self, tp: TopicPartition) -> int | None:
        """The offset to commit: lowest unsettled, else one past the highest seen."""
        pending = self._pending.get(tp)
        if pending:
            return min(pending)
        return self._next.get(tp)

    def uncommitted(self, tps: set[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        """Positions that moved since the last `committed` call."""
        out = {}
        for tp in self._next if tps is None else tps & set(self._next):
            pos = self.position(tp)
            if pos is not None and pos != self._committed.get(tp):
                out[tp] = pos
        return out

    def committed(self, offsets: Mapping[TopicPartition, int]) -> None:
        self._committed.update(offsets)

    def drop(self, tp: TopicPartition) -> None:
        self._pending.pop(tp, None)
        self._next.pop(tp, None)
        self._committed.pop(tp, None)

    @property
    def pending(self) -> int:
        return sum(len(p) for p in self._pending.values())


class HandoffConsumer:
    """Fetch loop, two lanes of workers, periodic commits of settled offsets."""

    def __init__(
        self,
        *,
        consumer: AIOKafkaConsumer,
        topic: str,
        dispatcher: Dispatcher,
        config: NotifierConfig,
    ) -> None:
        self.consumer = consumer
        self.topic = topic
        self.dispatcher = dispatcher
        self.config = config
        self.tracker = OffsetTracker()
        self._lanes: dict[str, asyncio.Queue[tuple[int, Handoff]]] = {
            FAST: asyncio.Queue(),
            ROUTINE: asyncio.Queue(),
        }
        for lane in self._lanes:  # export both lanes from the start, as zeros
            DELIVERIES_PENDING.labels(lane)
            EVENT_TO_DELIVERY.labels(lane)
        self._epoch: dict[TopicPartition, int] = {}
        self._assigned: set[TopicPartition] = set()
        self.joined = False  # a first assignment came (maybe empty: more members than partitions)
        self._active: dict[TopicPartition, set[asyncio.Task[None]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._paused = False
        self._stopping = False

    async def start(self) -> None:
        self.consumer.subscribe([self.topic], listener=_Listener(self))
        await self.consumer.start()
        self._tasks = [asyncio.create_task(self._fetch_loop(), name="notifier-fetch")]
        self._tasks.append(asyncio.create_task(self._commit_loop(), name="notifier-commit"))
        for lane, count in (
            (FAST, self.config.fast_lane_concurrency),
            (ROUTINE, self.config.routine_lane_concurrency),
        ):
            for i in range(max(1, count)):
                self._tasks.append(
                    asyncio.create_task(self._lane_worker(lane), name=f"notifier-{lane}-{i}")
                )

    async def stop(self, grace: float | None = None) -> None:
        """Stop fetching, give running deliveries `grace` seconds, commit what settled."""
        self._stopping = True
        await cancel_and_wait(self._tasks[:2])  # fetching
        grace = self.config.timeout_seconds if grace is None else grace
        await self._drain(set(self._active), grace)
        await cancel_and_wait(self._tasks[2:])
        with contextlib.suppress(KafkaError):
            await self._commit()
        for lane, queue in self._lanes.items():
            DELIVERIES_PENDING.labels(lane).dec(queue.qsize())
        await self.consumer.stop()

    @property
    def healthy(self) -> bool:
        return bool(self._tasks) and not any(t.done() for t in self._tasks)

    async def _fetch_loop(self) -> None:
        while True:
            try:
                batches = await self.consumer.getmany(timeout_ms=200, max_records=500)
            except KafkaError as exc:
                log.warning("fetch failed, retrying: %r", exc)
                await asyncio.sleep(1.0)
                continue
            for tp, records in batches.items():
                epoch = self._epoch.get(tp)
                if epoch is None or tp not in self._assigned:
                    continue
                for record in records:
                    await self._accept(tp, epoch, record)
            self._apply_backpressure()

    async def _accept(self, tp: TopicPartition, epoch: int, record: Any) -> None:
        self.tracker.add(tp, record.offset)
        try:
            handoff = Handoff.from_record(
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                key=record.key,
                value=record.value,
                headers=list(record.headers or ()),
            )
        except LeadstreamError as exc:
            await self._dead_letter_malformed(record, exc)
            self.tracker.settle(tp, record.offset)
            return
        lane = FAST if handoff.fast else ROUTINE
        DELIVERIES_PENDING.labels(lane).inc()
        self._lanes[lane].put_nowait((epoch, handoff))

    async def _dead_letter_malformed(self, record: Any, exc: LeadstreamError) -> None:
        shell = Handoff(
            ce_id="",
            ce_type="",
            lead_id="",
            priority="",
            to_stage="",
            from_stage="",
            queue=None,
            time="",
            received_at=None,
            value=record.value or b"",
            data={},
            key=record.key,
            headers=list(record.headers or ()),
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )
        await persist(lambda: self.dispatcher.dead_letter(shell, None, exc.reason, str(exc)))

    def _apply_backpressure(self) -> None:
        # Beyond max_pending stop fetching (pause keeps the group membership alive); this is
        # the one place where a huge routine backlog can delay a P1, and it is bounded.
        over = self.tracker.pending >= self.config.max_pending
        if over and not self._paused:
            self.consumer.pause(*self._assigned)
            self._paused = True
        elif not over and self._paused:
            self.consumer.resume(*self.consumer.assignment())
            self._paused = False

    async def _lane_worker(self, lane: str) -> None:
        queue = self._lanes[lane]
        while True:
            epoch, handoff = await queue.get()
            try:
                await self._run(epoch, handoff)
            finally:
                DELIVERIES_PENDING.labels(lane).dec()

    async def _run(self, epoch: int, handoff: Handoff) -> None:
        tp = TopicPartition(handoff.topic, handoff.partition)
        if self._stopping or self._epoch.get(tp) != epoch or tp not in self._assigned:
            return  # stopping, or the partition moved on: the record is fetched again
        # A task of its own, so a revocation can wait for or cancel this one delivery
        # without killing the lane worker.
        task = asyncio.create_task(self.dispatcher.dispatch(handoff))
        self._active.setdefault(tp, set()).add(task)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                # The worker itself is being stopped: stop the delivery too, and wait for it so
                # its claim is released before Redis closes.
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                raise
            return  # the delivery was cancelled (revocation): not settled
        except Exception:
            # A bug, not a delivery failure: leave it unsettled (redelivered after a restart).
            log.exception("handoff processing failed; offset left uncommitted")
            return
        finally:
            self._active.get(tp, set()).discard(task)
        self.tracker.settle(tp, handoff.offset)

    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.commit_interval_seconds)
            try:
                await self._commit()
            except CommitFailedError:
                log.info("commit skipped: group is rebalancing")
            except KafkaError as exc:
                log.warning("commit failed: %r", exc)

    async def _commit(self, tps: set[TopicPartition] | None = None) -> None:
        offsets = self.tracker.uncommitted(self._assigned if tps is None else tps)
        if offsets:
            await self.consumer.commit(offsets)
            self.tracker.committed(offsets)

    async def _drain(self, tps: set[TopicPartition], grace: float) -> None:
        """Wait up to `grace` for running deliveries of `tps`, then cancel the rest."""
        tasks = {t for tp in tps for t in self._active.get(tp, ())}
        if tasks:
            _, still = await asyncio.wait(tasks, timeout=grace)
            await cancel_and_wait(still)

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        self._assigned -= revoked
        # Settled work is committed; queued work is dropped when dequeued (epoch check);
        # running deliveries get a moment, then are cancelled — their claims are released and
        # the new owner delivers; a receiver that got it anyway dedupes by webhook-id.
        await self._drain(revoked, self.config.timeout_seconds)
        with contextlib.suppress(KafkaError):
            await self._commit(revoked)
        for tp in revoked:
            self.tracker.drop(tp)
            self._active.pop(tp, None)

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        self.joined = True
        for tp in assigned:
            self._epoch[tp] = self._epoch.get(tp, 0) + 1
            self.tracker.drop(tp)
        self._assigned |= assigned
        if self._paused:
            self.consumer.pause(*assigned)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: HandoffConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._owner.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self._owner.on_assigned(set(assigned))
