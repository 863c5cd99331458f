"""The persisted delivery schedule in the real Redis, with a fake clock: hours pass in a loop.

The sink and the dead-letter producer are fakes; the Redis entries, leases and claims are real.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import REGISTRY

from stream.deadletters.record import header_value
from stream.errors import DeliveryError
from stream.notify import NotifierConfig
from stream.notify.deliverylog import DeliveryLog
from stream.notify.dispatch import FAST, ROUTINE, Dispatcher
from stream.notify.idempotency import Idempotency
from stream.notify.parked import Parked, ParkingLot, Taken, next_delay
from stream.notify.routes import Routes
from stream.notify.scheduler import Scheduler
from stream.notify.sinks import Handoff
from stream.settings import Settings

from .conftest import make_handoff

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0
MINUTE = 60.0


class Clock:
    """Wall time that moves only when told."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeSink:
    """A receiver that is down (503, or what `fail` raises) until `up_at` on the fake clock."""

    clock: Clock
    up_at: float = 0.0
    name: str = "webhook"
    fail: Callable[[], Exception] = lambda: DeliveryError("HTTP 503", retriable=True)
    hang_unless_p1: asyncio.Event | None = None
    received: Counter[str] = field(default_factory=Counter)
    attempts: Counter[str] = field(default_factory=Counter)

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def deliver(self, handoff: Handoff) -> None:
        self.attempts[handoff.ce_id] += 1
        if self.hang_unless_p1 is not None and not handoff.fast:
            await self.hang_unless_p1.wait()
        if self.clock() < self.up_at:
            raise self.fail()
        self.received[handoff.ce_id] += 1


class FakeProducer:
    """Keeps dead letters instead of sending them to Kafka."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]] = []

    async def send_and_wait(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        self.sent.append((topic, value, key, list(headers or ())))


@dataclass
class Notifier:
    """One notifier's worth of dispatcher and scheduler (a restart is a new one)."""

    dispatcher: Dispatcher
    scheduler: Scheduler
    producer: FakeProducer


def notifier(
    settings: Settings,
    redis: Any,
    sink: FakeSink,
    clock: Clock,
    producer: FakeProducer | None = None,
    **overrides: Any,
) -> Notifier:
    values: dict[str, Any] = {
        "backoff_seconds": 0.001,
        "timeout_seconds": 2.0,
        "claim_ttl_seconds": 5.0,
        "schedule_poll_seconds": 0.05,
    }
    values.update(overrides)
    config = NotifierConfig.from_settings(settings, **values)
    producer = producer or FakeProducer()
    parking = ParkingLot(redis, settings.redis_prefix)
    dispatcher = Dispatcher(
        config=config,
        sinks={sink.name: sink},
        routes=Routes((), (sink.name,)),
        idempotency=Idempotency(redis, settings.redis_prefix, claim_ttl_seconds=5.0),
        deliverylog=DeliveryLog(redis, settings.redis_prefix),
        parking=parking,
        producer=producer,  # type: ignore[arg-type]
        deadletter_topic="leads.handoff.deadletter",
        clock=clock,
    )
    scheduler = Scheduler(
        config=config, dispatcher=dispatcher, parking=parking, sinks=[sink.name], clock=clock
    )
    return Notifier(dispatcher, scheduler, producer)


def handoffs(count: int) -> list[Handoff]:
    return [
        make_handoff(f"ce-{i:03d}", f"lead-{i:03d}", "P1" if i % 4 == 0 else "P3")
        for i in range(count)
    ]


async def run_until(n: Notifier, clock: Clock, end: float, step: float) -> None:
    """Advance the fake clock to `end` in `step`s, running every due attempt at each."""
    while clock.now < end:
        clock.now = min(end, clock.now + step)
        for lane in (FAST, ROUTINE):
            await n.scheduler.run_due(lane)


async def parked_count(settings: Settings, redis: Any, sink: str = "webhook") -> int:
    parking = ParkingLot(redis, settings.redis_prefix)
    backlog = await parking.backlog((FAST, ROUTINE), [sink], T0)
    return backlog[sink].parked


async def test_ten_minute_outage_delivers_every_handoff_once_without_a_redrive(
    settings: Settings, redis_client: Any
) -> None:
    """Done-when of issue 12: down 10 min, the default 5s,5m,30m,2h,5h,10h schedule."""
    clock = Clock()
    sink = FakeSink(clock, up_at=T0 + 10 * MINUTE)
    first = notifier(settings, redis_client, sink, clock)
    items = handoffs(24)
    for handoff in items:
        await first.dispatcher.dispatch(handoff)  # the Kafka path: quick attempts, then parked
    assert await parked_count(settings, redis_client) == len(items)
    assert all(sink.attempts[h.ce_id] == 3 for h in items)  # the quick attempts

    # Two minutes in, the notifier restarts: nothing of the schedule lives in the process.
    await run_until(first, clock, T0 + 2 * MINUTE, step=5.0)
    producer = first.producer
    second = notifier(settings, redis_client, sink, clock, producer=producer)
    await run_until(second, clock, T0 + 60 * MINUTE, step=5.0)

    assert sink.received == Counter({h.ce_id: 1 for h in items})  # every one, exactly once
    assert producer.sent == []  # nothing dead-lettered
    assert await parked_count(settings, redis_client) == 0
    # 3 quick, then 5 s and 5 min (both still down), then 30 min later: delivered.
    assert all(sink.attempts[h.ce_id] == 6 for h in items)
    log = await DeliveryLog(redis_client, settings.redis_prefix).read("lead-000")
    assert [e["status"] for e in log] == ["delivered", "parked", "parked", "parked"]
    assert log[0]["attempts"] == 6
    for handoff in items:
        key = f"{settings.redis_prefix}delivered:webhook:{handoff.ce_id}"
        assert await redis_client.exists(key)


async def test_schedule_spent_is_dead_lettered_with_reason_attempts_and_sink(
    settings: Settings, redis_client: Any
) -> None:
    clock = Clock()
    sink = FakeSink(clock, up_at=float("inf"))
    n = notifier(settings, redis_client, sink, clock, attempts=2, schedule=(10.0, 60.0))
    handoff = make_handoff("ce-spent", priority="P2")
    await n.dispatcher.dispatch(handoff)
    await run_until(n, clock, T0 + 30.0, step=1.0)
    assert n.producer.sent == []  # one scheduled attempt left: not yet
    await run_until(n, clock, T0 + 200.0, step=5.0)
    ((topic, value, key, headers),) = n.producer.sent
    assert topic == "leads.handoff.deadletter" and value == handoff.value and key == b"lead-1"
    assert header_value(headers, "reason") == "delivery_exhausted"
    assert header_value(headers, "attempts") == "4"  # 2 quick + 2 scheduled
    assert header_value(headers, "sink") == "webhook"
    assert header_value(headers, "ce_id") == "ce-spent"  # original headers kept
    assert "HTTP 503" in (header_value(headers, "error") or "")
    assert sink.attempts["ce-spent"] == 4
    assert await parked_count(settings, redis_client) == 0


async def test_permanent_error_on_a_scheduled_attempt_is_dead_lettered_at_once(
    settings: Settings, redis_client: Any
) -> None:
    clock = Clock()
    sink = FakeSink(clock, up_at=float("inf"))
    n = notifier(settings, redis_client, sink, clock, attempts=1)
    await n.dispatcher.dispatch(make_handoff("ce-gone", priority="P2"))
    assert await parked_count(settings, redis_client) == 1
    sink.fail = lambda: DeliveryError("HTTP 410: gone", retriable=False)
    await run_until(n, clock, T0 + 10.0, step=5.0)
    ((_, _, _, headers),) = n.producer.sent
    assert header_value(headers, "reason") == "delivery_permanent"
    assert header_value(headers, "attempts") == "2"
    assert await parked_count(settings, redis_client) == 0


async def test_empty_schedule_dead_letters_after_the_quick_attempts(
    settings: Settings, redis_client: Any
) -> None:
    clock = Clock()
    sink = FakeSink(clock, up_at=float("inf"))
    n = notifier(settings, redis_client, sink, clock, attempts=3, schedule=())
    await n.dispatcher.dispatch(make_handoff("ce-none", priority="P2"))
    ((_, _, _, headers),) = n.producer.sent
    assert header_value(headers, "reason") == "delivery_exhausted"
    assert header_value(headers, "attempts") == "3"
    assert await parked_count(settings, redis_client) == 0


async def test_redelivered_record_of_a_parked_delivery_keeps_its_schedule(
    settings: Settings, redis_client: Any
) -> None:
    clock = Clock()
    sink = FakeSink(clock, up_at=float("inf"))
    n = notifier(settings, redis_client, sink, clock)
    handoff = make_handoff("ce-again", priority="P2")
    await n.dispatcher.dispatch(handoff)
    parking = ParkingLot(redis_client, settings.redis_prefix)
    before = await parking.get_raw("webhook", "ce-again")
    clock.now += 1.0
    await n.dispatcher.dispatch(handoff)  # a restart before the offset commit
    assert sink.attempts["ce-again"] == 3  # no new attempts: the schedule has it
    assert await parking.get_raw("webhook", "ce-again") == before


async def test_two_notifiers_never_deliver_the_same_due_entry_twice(
    settings: Settings, redis_client: Any
) -> None:
    clock = Clock()
    sink = FakeSink(clock, up_at=T0 + 1.0)
    a = notifier(settings, redis_client, sink, clock, attempts=1)
    b = notifier(settings, redis_client, sink, clock, attempts=1)
    items = handoffs(40)
    for handoff in items:
        await a.dispatcher.dispatch(handoff)
    clock.now = T0 + 10.0
    for _ in range(3):
        await asyncio.gather(
            *(n.scheduler.run_due(lane) for n in (a, b) for lane in (FAST, ROUTINE))
        )
    assert sink.received == Counter({h.ce_id: 1 for h in items})


async def test_p1_due_entries_never_wait_behind_routine_ones(
    settings: Settings, redis_client: Any
) -> None:
    """Routine scheduled attempts hang (both workers stuck); a due P1 is still delivered."""
    clock = Clock()
    sink = FakeSink(clock, up_at=T0 + 150.0)
    n = notifier(settings, redis_client, sink, clock, attempts=1, routine_lane_concurrency=2)
    for i in range(6):
        await n.dispatcher.dispatch(make_handoff(f"ce-p3-{i}", f"lead-{i}", "P3"))  # due T0+5
    clock.now = T0 + 100.0
    await n.dispatcher.dispatch(make_handoff("ce-p1", "lead-p1", "P1"))  # due T0+105
    sink.hang_unless_p1 = asyncio.Event()

    async def routine_attempts() -> int:
        return sum(sink.attempts[f"ce-p3-{i}"] for i in range(6)) - 6  # minus the quick ones

    clock.now = T0 + 101.0  # the routine entries are due, the P1 not yet
    await n.scheduler.start()
    try:
        for _ in range(400):
            if await routine_attempts() == 2:
                break
            await asyncio.sleep(0.025)
        assert await routine_attempts() == 2  # both routine workers hang
        clock.now = T0 + 200.0  # the P1 is due and its receiver is up
        for _ in range(400):
            if sink.received["ce-p1"]:
                break
            await asyncio.sleep(0.025)
        assert sink.received["ce-p1"] == 1
        assert await routine_attempts() == 2  # still stuck: the P1 did not wait for them
    finally:
        sink.hang_unless_p1.set()
        await n.scheduler.stop(grace=5.0)


async def test_long_retry_after_parks_at_once_and_is_honoured(
    settings: Settings, redis_client: Any
) -> None:
    clock = Clock()
    sink = FakeSink(clock, up_at=float("inf"))
    sink.fail = lambda: DeliveryError("HTTP 429", retriable=True, retry_after=600.0)
    n = notifier(settings, redis_client, sink, clock, attempts=5, max_backoff_seconds=30.0)
    await n.dispatcher.dispatch(make_handoff("ce-429", priority="P2"))
    assert sink.attempts["ce-429"] == 1  # no 600 s wait in the lane
    raw = await ParkingLot(redis_client, settings.redis_prefix).get_raw("webhook", "ce-429")
    assert raw is not None
    assert Parked.from_json(raw).due == pytest.approx(T0 + 600.0)  # not the schedule's 5 s
    sink.up_at = T0
    await run_until(n, clock, T0 + 590.0, step=10.0)
    assert sink.received["ce-429"] == 0
    await run_until(n, clock, T0 + 620.0, step=10.0)
    assert sink.received["ce-429"] == 1


async def test_unreadable_entry_is_dead_lettered_with_its_bytes(
    settings: Settings, redis_client: Any
) -> None:
    clock = Clock()
    sink = FakeSink(clock)
    n = notifier(settings, redis_client, sink, clock)
    parking = ParkingLot(redis_client, settings.redis_prefix)
    await redis_client.set(parking.entry_key("webhook", "ce-junk"), b"{not json")
    await redis_client.zadd(parking.schedule_key(ROUTINE, "webhook"), {"ce-junk": T0})
    assert await n.scheduler.run_due(ROUTINE) == 1
    ((_, value, _, headers),) = n.producer.sent
    assert value == b"{not json"
    assert header_value(headers, "reason") == "schema_violation"
    assert header_value(headers, "ce_id") == "ce-junk"
    assert await parked_count(settings, redis_client) == 0


async def test_backlog_metrics_count_parked_and_overdue(
    settings: Settings, redis_client: Any
) -> None:
    clock = Clock()
    sink = FakeSink(clock, up_at=float("inf"))
    n = notifier(settings, redis_client, sink, clock, attempts=1)
    for handoff in handoffs(3):
        await n.dispatcher.dispatch(handoff)
    await n.scheduler.export_backlog()
    assert gauge("leadstream_notifier_parked_deliveries") == 3
    assert gauge("leadstream_notifier_parked_overdue_seconds") == 0.0  # due in 5 s
    clock.now = T0 + 65.0  # nobody worked through the schedule for a minute
    await n.scheduler.export_backlog()
    assert gauge("leadstream_notifier_parked_overdue_seconds") == pytest.approx(60.0)


def gauge(name: str, sink: str = "webhook") -> float | None:
    return REGISTRY.get_sample_value(name, {"sink": sink})


async def test_a_lease_is_exclusive_until_given_back(settings: Settings, redis_client: Any) -> None:
    clock = Clock()
    sink = FakeSink(clock, up_at=float("inf"))
    n = notifier(settings, redis_client, sink, clock, attempts=1)
    await n.dispatcher.dispatch(make_handoff("ce-back", priority="P2"))
    parking = ParkingLot(redis_client, settings.redis_prefix)
    clock.now = T0 + 10.0
    (taken,) = await parking.take(ROUTINE, "webhook", now=clock.now, lease_seconds=60, limit=5)
    assert await parking.take(ROUTINE, "webhook", now=clock.now, lease_seconds=60, limit=5) == []
    await parking.give_back(taken, clock.now)
    assert await parking.holds(taken) is False
    (again,) = await parking.take(ROUTINE, "webhook", now=clock.now, lease_seconds=60, limit=5)
    assert again.ce_id == "ce-back"
    assert not await parking.holds(Taken(ROUTINE, "webhook", "ce-back", taken.lease + 1))


def test_parked_entry_round_trips_bytes() -> None:
    handoff = make_handoff("ce-rt", priority="P1")
    headers = [*handoff.headers, ("binary", bytes(range(256)))]
    entry = Parked.of(
        Handoff.from_record(
            topic="t", partition=3, offset=9, key=None, value=handoff.value, headers=headers
        ),
        "crm",
        FAST,
        step=2,
        attempts=5,
        due=T0 + 0.123,
        parked_at=T0,
        last_error="HTTP 503",
    )
    back = Parked.from_json(entry.to_json())
    assert back == entry
    assert back.handoff().headers == headers and back.handoff().key is None
    with pytest.raises(ValueError, match="not a parked entry"):
        Parked.from_json(b'{"sink": "crm"}')


@pytest.mark.parametrize(
    ("step", "retry_after", "expected"),
    [(0, None, 5.0), (1, None, 300.0), (0, 60.0, 60.0), (1, 60.0, 300.0), (0, 10**9, 900.0)],
)
def test_next_delay_takes_the_longer_of_schedule_and_retry_after(
    step: int, retry_after: float | None, expected: float
) -> None:
    assert next_delay((5.0, 300.0), step, retry_after, 900.0) == expected
