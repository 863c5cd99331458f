"""The scheduler: takes parked deliveries when they are due and has the dispatcher attempt them.

Per lane one poller and its own workers (as many as the lane's Kafka workers), so a due P1
retry never waits behind routine ones, and a routine receiver that is down for hours costs
no P1 anything. The poller leases at most as many entries as its queue has room for, so the
rest stay available to other notifiers; a lease outlives the queue wait plus one attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable

from stream.metrics import PARKED_DELIVERIES, PARKED_OVERDUE
from stream.notify import NotifierConfig
from stream.notify.dispatch import FAST, INFRA_ERRORS, LANES, ROUTINE, Dispatcher
from stream.notify.parked import ParkingLot, Taken
from stream.notify.routes import SINK_NAMES
from stream.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class Scheduler:
    """Pollers, workers and the backlog metrics of the persisted delivery schedule."""

    def __init__(
        self,
        *,
        config: NotifierConfig,
        dispatcher: Dispatcher,
        parking: ParkingLot,
        sinks: Iterable[str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.dispatcher = dispatcher
        self.parking = parking
        self.sinks = tuple(sorted(sinks))
        self.clock = clock
        self._concurrency = {
            FAST: max(1, config.fast_lane_concurrency),
            ROUTINE: max(1, config.routine_lane_concurrency),
        }
        self._queues: dict[str, asyncio.Queue[Taken]] = {
            lane: asyncio.Queue(maxsize=2 * n) for lane, n in self._concurrency.items()
        }
        # Long enough for a full queue ahead of it plus its own attempt, and never shorter
        # than a claim: an entry is not taken again while it may still be attempted.
        attempt = config.timeout_seconds + 1.0
        self.lease_seconds = max(config.claim_ttl_seconds, 3 * attempt + 5.0)
        self._pollers: list[asyncio.Task[None]] = []
        self._workers: list[asyncio.Task[None]] = []
        self._active: set[asyncio.Task[None]] = set()
        for sink in self.sinks:  # export the configured sinks from the start, as zeros
            PARKED_DELIVERIES.labels(sink)
            PARKED_OVERDUE.labels(sink)

    async def start(self) -> None:
        for lane in LANES:
            self._pollers.append(asyncio.create_task(self._poll(lane), name=f"schedule-{lane}"))
            for i in range(self._concurrency[lane]):
                self._workers.append(
                    asyncio.create_task(self._work(lane), name=f"schedule-{lane}-{i}")
                )
        self._pollers.append(asyncio.create_task(self._export(), name="schedule-metrics"))

    async def stop(self, grace: float) -> None:
        """Stop taking, give running attempts `grace` seconds, hand queued leases back."""
        await cancel_and_wait(self._pollers)
        if self._active:
            await asyncio.wait(set(self._active), timeout=grace)
        await cancel_and_wait(self._workers)
        now = self.clock()
        for queue in self._queues.values():
            while not queue.empty():
                with contextlib.suppress(*INFRA_ERRORS):
                    await self.parking.give_back(queue.get_nowait(), now)
        self._pollers, self._workers = [], []

    @property
    def healthy(self) -> bool:
        tasks = self._pollers + self._workers
        return bool(tasks) and not any(t.done() for t in tasks)

    async def run_due(self, lane: str) -> int:
        """One round without the pollers: take everything due now and attempt it (tests)."""
        taken: list[Taken] = []
        for sink in self.sinks:
            taken += await self.parking.take(
                lane, sink, now=self.clock(), lease_seconds=self.lease_seconds, limit=10_000
            )
        await asyncio.gather(*(self.dispatcher.deliver_parked(t) for t in taken))
        return len(taken)

    async def export_backlog(self) -> None:
        """Set the backlog gauges from Redis (also for parked entries of unconfigured sinks)."""
        backlog = await self.parking.backlog(LANES, SINK_NAMES, self.clock())
        for sink, state in backlog.items():
            if sink in self.sinks or state.parked:
                PARKED_DELIVERIES.labels(sink).set(state.parked)
                PARKED_OVERDUE.labels(sink).set(state.overdue_seconds)

    async def _poll(self, lane: str) -> None:
        queue = self._queues[lane]
        while True:
            free = queue.maxsize - queue.qsize()
            if free <= 0:
                await asyncio.sleep(0.05)  # every worker busy, the queue full: soon
                continue
            limit = max(1, free // len(self.sinks)) if self.sinks else 0
            more = False
            try:
                for sink in self.sinks:
                    taken = await self.parking.take(
                        lane, sink, now=self.clock(), lease_seconds=self.lease_seconds, limit=limit
                    )
                    for item in taken:
                        queue.put_nowait(item)
                    more = more or len(taken) == limit
            except INFRA_ERRORS as exc:
                log.warning("delivery schedule not read (%r); trying again", exc)
                more = False
            if not more:
                await asyncio.sleep(self.config.schedule_poll_seconds)

    async def _work(self, lane: str) -> None:
        queue = self._queues[lane]
        while True:
            taken = await queue.get()
            task = asyncio.create_task(self.dispatcher.deliver_parked(taken))
            self._active.add(task)
            try:
                # Shielded, so that stopping this worker always stops it (a cancellation that
                # reached only the delivery could be absorbed by a library in mid-call).
                await asyncio.shield(task)
            except asyncio.CancelledError:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                raise
            except INFRA_ERRORS as exc:
                log.warning("scheduled delivery not attempted (%r): due again after its lease", exc)
            except Exception:
                log.exception("scheduled delivery failed: due again after its lease")
            finally:
                self._active.discard(task)

    async def _export(self) -> None:
        while True:
            try:
                await self.export_backlog()
            except INFRA_ERRORS as exc:
                log.warning("delivery schedule backlog not read: %r", exc)
            await asyncio.sleep(max(1.0, self.config.schedule_poll_seconds))
