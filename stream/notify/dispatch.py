"""Delivering one handoff to its sinks: idempotency, quick retries, the schedule, dead letters.

Two ways in. `dispatch` is the Kafka path: a fresh record, a few quick attempts in process
(short blips), then — if the receiver still fails — the delivery is parked on the persisted
schedule (`parked.py`) and the record counts as settled, so its offset commits and no lane slot
waits hours. `deliver_parked` is the scheduler's path: one attempt of a parked delivery that is
due, after which it is delivered, moved to the schedule's next step, or — only when the schedule
is spent, or at once for a permanent error — dead-lettered. Either way the in-flight claim is held
while attempting and the delivered marker is what makes every sink get a handoff once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from stream.deadletters.record import deadletter_headers
from stream.errors import LeadstreamError
from stream.metrics import DEAD_LETTERS, DELIVERIES, DELIVERY_ATTEMPT_DURATION, EVENT_TO_DELIVERY
from stream.notify import NotifierConfig
from stream.notify.deliverylog import DeliveryEntry, DeliveryLog
from stream.notify.idempotency import Idempotency
from stream.notify.parked import Parked, ParkingLot, Taken, next_delay
from stream.notify.retry import RetryPolicy, RetryResult, run_with_retry
from stream.notify.routes import SALES_SINKS, Routes, is_sales
from stream.notify.sinks import Handoff, Sink
from stream.times import parse_rfc3339

log = logging.getLogger(__name__)

T = TypeVar("T")
FAST, ROUTINE = "fast", "routine"
LANES = (FAST, ROUTINE)
INFRA_ERRORS = (RedisError, KafkaError, OSError, TimeoutError)
_DEADLETTER_HEADER_NAMES = frozenset(
    {"reason", "stage", "error", "original_topic", "original_partition", "original_offset"}
    | {"sink", "attempts"}
)


def lane_of(handoff: Handoff) -> str:
    return FAST if handoff.fast else ROUTINE


class Dispatcher:
    """Delivers handoffs to sinks; owns the decision delivered / parked / dead letter."""

    def __init__(
        self,
        *,
        config: NotifierConfig,
        sinks: Mapping[str, Sink],
        routes: Routes,
        idempotency: Idempotency,
        deliverylog: DeliveryLog,
        parking: ParkingLot,
        producer: AIOKafkaProducer,
        deadletter_topic: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.sinks = sinks
        self.routes = routes
        self.idempotency = idempotency
        self.deliverylog = deliverylog
        self.parking = parking
        self.producer = producer
        self.deadletter_topic = deadletter_topic
        self.clock = clock
        """Wall clock of due times (Unix seconds); a fake one in tests."""
        self.policy = RetryPolicy(
            attempts=config.attempts,
            base_delay=config.backoff_seconds,
            max_delay=config.max_backoff_seconds,
            max_retry_after=config.max_retry_after_seconds,
        )
        self._once = RetryPolicy(attempts=1)

    async def dispatch(self, handoff: Handoff) -> None:
        """Return only once every routed sink has settled the handoff (parked counts)."""
        names = self.routes.select(handoff)
        if self.config.handoffs == "sales" and not is_sales(handoff):
            # Settled for the sales sinks by not sending it: counted, never silent.
            for name in names:
                if name in SALES_SINKS:
                    DELIVERIES.labels(name, "skipped").inc()
            names = tuple(name for name in names if name not in SALES_SINKS)
        await asyncio.gather(*(self.deliver(handoff, self.sinks[name]) for name in names))

    async def deliver(self, handoff: Handoff, sink: Sink) -> None:
        """The Kafka path: quick attempts, then delivered, parked or dead-lettered."""
        started = time.monotonic()
        idem = self.idempotency
        if not await persist(lambda: idem.acquire(sink.name, handoff.ce_id)):
            await self._record(handoff, sink, "deduped", 0, None, started)
            return
        try:
            if await persist(lambda: self.parking.exists(sink.name, handoff.ce_id)):
                # A redelivery of a record whose delivery is parked already (a restart before
                # the commit): the schedule has it; starting over would reset its attempts.
                log.info("handoff already on the delivery schedule: sink=%s", sink.name)
                return
            result = await run_with_retry(
                lambda: self._attempt(handoff, sink),
                self.policy,
                before_attempt=lambda _: idem.renew(sink.name, handoff.ce_id),
                sleep=lambda delay: self._hold_and_sleep(sink, handoff, delay),
                # With a schedule, a long Retry-After parks instead of holding the lane slot.
                longest_pause=self.config.max_backoff_seconds if self.config.schedule else None,
            )
            status, attempts = await self._settle(handoff, sink, result, None)
        finally:
            with contextlib.suppress(*INFRA_ERRORS):
                await idem.release(sink.name, handoff.ce_id)
        error = None if result.error is None else str(result.error)
        await self._record(handoff, sink, status, attempts, error, started)

    async def deliver_parked(self, taken: Taken) -> None:
        """The scheduler's path: one attempt of a parked delivery that this notifier leased.

        Infrastructure errors before the attempt propagate (the lease runs out and the entry
        is due again); after the attempt every write is retried until it works.
        """
        started = time.monotonic()
        sink = self.sinks[taken.sink]
        idem = self.idempotency
        if not await idem.claim(taken.sink, taken.ce_id):
            return  # another delivery of this ce_id runs now (a redelivered record): later
        try:
            if not await self.parking.holds(taken):
                return  # settled or moved on by another notifier after our lease ran out
            raw = await self.parking.get_raw(taken.sink, taken.ce_id)
            if raw is None:
                # Only a hand-edited Redis gets here: there is no record left to dead-letter.
                log.error("schedule entry without its data removed: sink=%s", taken.sink)
                await self.parking.remove(taken.lane, taken.sink, taken.ce_id)
                return
            try:
                entry = Parked.from_json(raw)
                handoff = entry.handoff()
            except (ValueError, LeadstreamError) as exc:
                problem = str(exc)
                await persist(lambda: self._dead_letter_unreadable(taken, raw, problem))
                await persist(lambda: self.parking.remove(taken.lane, taken.sink, taken.ce_id))
                return
            if await idem.is_delivered(taken.sink, taken.ce_id):
                await persist(lambda: self.parking.remove(taken.lane, taken.sink, taken.ce_id))
                status, attempts, error = "deduped", entry.attempts, None
            else:
                await idem.renew(taken.sink, taken.ce_id)
                result = await run_with_retry(lambda: self._attempt(handoff, sink), self._once)
                status, attempts = await self._settle(handoff, sink, result, entry)
                error = None if result.error is None else str(result.error)
        finally:
            with contextlib.suppress(*INFRA_ERRORS):
                await idem.release(taken.sink, taken.ce_id)
        await self._record(handoff, sink, status, attempts, error, started)

    async def _settle(
        self, handoff: Handoff, sink: Sink, result: RetryResult, entry: Parked | None
    ) -> tuple[str, int]:
        """Act on an outcome: (status, attempts in all). `entry` is the parked one, if any."""
        attempts = result.attempts + (entry.attempts if entry is not None else 0)
        lane = lane_of(handoff)
        if result.delivered:
            await persist(lambda: self.idempotency.mark_delivered(sink.name, handoff.ce_id))
            if entry is not None:
                await persist(lambda: self.parking.remove(lane, sink.name, handoff.ce_id))
            observe_event_to_delivery(handoff)
            return "delivered", attempts
        error = result.error
        assert error is not None
        step = 0 if entry is None else entry.step + 1
        if error.retriable and step < len(self.config.schedule):
            now = self.clock()
            wait = next_delay(
                self.config.schedule, step, error.retry_after, self.config.max_retry_after_seconds
            )
            parked = Parked.of(
                handoff,
                sink.name,
                lane,
                step=step,
                attempts=attempts,
                due=now + wait,
                parked_at=now if entry is None else entry.parked_at,
                last_error=str(error),
            )
            await persist(lambda: self.parking.park(parked))
            log.info(
                "delivery parked: sink=%s attempts=%d next in %.0fs (step %d of %d): %s",
                sink.name,
                attempts,
                wait,
                step + 1,
                len(self.config.schedule),
                str(error)[:200],
            )
            return "parked", attempts
        status = "exhausted" if error.retriable else "permanent"
        spent = RetryResult(attempts, error)
        await persist(lambda: self.dead_letter(handoff, sink.name, status, spent))
        if entry is not None:
            await persist(lambda: self.parking.remove(lane, sink.name, handoff.ce_id))
        return status, attempts

    async def _dead_letter_unreadable(self, taken: Taken, raw: bytes, error: str) -> None:
        """A schedule entry that does not decode: its bytes go to the dead-letter topic."""
        headers = deadletter_headers(
            "schema_violation",
            "notifier",
            f"unreadable schedule entry: {error}",
            extra=[("sink", taken.sink), ("ce_id", taken.ce_id)],
        )
        await self.producer.send_and_wait(self.deadletter_topic, value=raw, headers=headers)
        DEAD_LETTERS.labels("notifier", "schema_violation").inc()
        log.error("unreadable schedule entry dead-lettered: sink=%s: %s", taken.sink, error)

    async def _attempt(self, handoff: Handoff, sink: Sink) -> None:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.config.timeout_seconds + 1.0):
                await sink.deliver(handoff)
        finally:
            DELIVERY_ATTEMPT_DURATION.labels(sink.name).observe(time.monotonic() - started)

    async def _hold_and_sleep(self, sink: Sink, handoff: Handoff, delay: float) -> None:
        # Keep the claim through the pause and the next attempt, or another instance could
        # take it over and deliver while we are about to.
        with contextlib.suppress(*INFRA_ERRORS):
            await self.idempotency.renew(
                sink.name, handoff.ce_id, delay + self.config.timeout_seconds + 5.0
            )
        await asyncio.sleep(delay)

    async def dead_letter(
        self, handoff: Handoff, sink: str | None, status: str, result: RetryResult | str
    ) -> None:
        """Original value and key unchanged, original headers kept, the reason added."""
        reason = f"delivery_{status}" if status in ("exhausted", "permanent") else status
        error = result if isinstance(result, str) else str(result.error)
        extra = [] if sink is None else [("sink", sink)]
        if isinstance(result, RetryResult):
            extra.append(("attempts", str(result.attempts)))
        # A re-driven dead letter that failed again carries the old reason headers: replace them.
        headers = [(k, v) for k, v in handoff.headers if k not in _DEADLETTER_HEADER_NAMES]
        headers += deadletter_headers(
            reason,
            "notifier",
            error,
            topic=handoff.topic,
            partition=handoff.partition,
            offset=handoff.offset,
            extra=extra,
        )
        await self.producer.send_and_wait(
            self.deadletter_topic, value=handoff.value, key=handoff.key, headers=headers
        )
        DEAD_LETTERS.labels("notifier", reason).inc()
        log.warning(
            "handoff dead-lettered: sink=%s reason=%s partition=%s offset=%s error=%s",
            sink,
            reason,
            handoff.partition,
            handoff.offset,
            error[:300],
        )

    async def _record(
        self,
        handoff: Handoff,
        sink: Sink,
        status: str,
        attempts: int,
        error: str | None,
        started: float,
    ) -> None:
        DELIVERIES.labels(sink.name, status).inc()
        latency = None
        if handoff.received_at:
            with contextlib.suppress(ValueError):
                received = parse_rfc3339(handoff.received_at)
                latency = (datetime.now(UTC) - received).total_seconds() * 1000
        entry = DeliveryEntry(
            ce_id=handoff.ce_id,
            type=handoff.ce_type,
            sink=sink.name,
            status=status,
            attempts=attempts,
            latency_ms=latency,
            duration_ms=(time.monotonic() - started) * 1000,
            error=error[:500] if error else None,
            at=time.time(),
        )
        try:
            await self.deliverylog.append(handoff.lead_id, entry)
        except INFRA_ERRORS as exc:  # the log is for people; it never blocks a settlement
            log.warning("delivery log not written: %s", type(exc).__name__)


def observe_event_to_delivery(handoff: Handoff) -> None:
    """Event receipt (ce_receivedat) to now, in the handoff's lane; skipped without the header."""
    if not handoff.received_at:
        return
    try:
        received = parse_rfc3339(handoff.received_at)
        seconds = (datetime.now(UTC) - received).total_seconds()
    except (ValueError, TypeError):  # unparsable, or a time without a zone
        return
    # Clocks of collector and notifier hosts may differ a little: never a negative latency.
    EVENT_TO_DELIVERY.labels(lane_of(handoff)).observe(max(0.0, seconds))


async def persist(op: Callable[[], Awaitable[T]], *, cap: float = 5.0) -> T:
    """Retry an infrastructure call (Redis, Kafka) until it works: nothing may settle without it.

    The offset stays uncommitted meanwhile (or the schedule entry keeps its lease), so a process
    that gives up here loses nothing.
    """
    delay = 0.1
    while True:
        try:
            return await op()
        except INFRA_ERRORS as exc:
            log.warning("infrastructure call failed, retrying in %.1fs: %r", delay, exc)
            await asyncio.sleep(delay)
            delay = min(cap, delay * 2)
