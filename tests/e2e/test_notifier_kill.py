"""SIGKILL the notifier in the middle of a delivery burst: nothing is lost, nothing settled is
delivered again.

What a crash can repeat is limited to the deliveries in flight at the kill: the receiver may
have taken a request whose answer the dead process never recorded. Those come again with the
same `webhook-id`, which is why Standard Webhooks receivers drop repeats by that id; the
receiver here does, and the test checks the repeats are only such in-flight ones.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from stream.demo import Processes, wait_http
from stream.dev.process import free_port
from stream.dev.receiver import WebhookReceiver
from stream.pipeline.handoff import ce_id, handoff_record
from stream.scoring.explain import Transition
from stream.settings import Settings
from stream.topics import Topics
from tests.e2e.conftest import eventually
from tests.kafka_helpers import produce_records

pytestmark = pytest.mark.e2e
BURST = 300


def handoff(n: int) -> Transition:
    priority = "P1" if n % 10 == 0 else "P2"
    return Transition(
        lead_id=f"kill-{n:04d}",
        seq=1,
        at=20500.0 + n / 86400,
        from_stage="lead",
        to_stage="sales_ready",
        reason="fast_lane",
        engagement=40.0,
        groups={},
        fit=80.0,
        grade="A",
        threshold=None,
        route="ae",
        priority=priority,
        sla="PT1H",
        task=None,
        bant={"budget": None, "authority": True, "need": None, "timeline": None},
        top_contributors=(("sales.demo_requested", 30.0),),
        model_version="default-b2b@1.0.0",
        trigger_event_ids=(f"e{n}",),
    )


class SlowReceiver(WebhookReceiver):
    """Takes a few milliseconds per request, so the burst is still running at the kill."""

    async def handle(self, request):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.01)
        return await super().handle(request)


async def test_sigkill_mid_burst_loses_nothing_and_repeats_only_in_flight(
    settings: Settings, tmp_path: Path
) -> None:
    hook = SlowReceiver(settings.webhook_secret.split()[0])
    port = free_port()
    await hook.start(port)
    settings = settings.replace(webhook_url=f"http://127.0.0.1:{port}/hooks/sales")
    topic = Topics.from_settings(settings).handoff
    await produce_records(
        settings.kafka_bootstrap, topic, [handoff_record(handoff(n)) for n in range(BURST)]
    )
    expected = {ce_id(f"kill-{n:04d}", 1) for n in range(BURST)}
    procs = Processes(settings, tmp_path / "logs")
    try:
        procs.start("notifier")
        await eventually(lambda: len(hook.seen_ids) >= BURST // 4, "a quarter of the burst", 60)
        procs.children["notifier"].send_signal(signal.SIGKILL)
        procs.children["notifier"].wait()
        at_kill = len(hook.seen_ids)
        assert at_kill < BURST, "the burst ended before the kill; make the receiver slower"
        procs.start("notifier")
        await wait_http(
            f"http://{settings.metrics_host}:{settings.notifier_port}/healthz", procs, 60
        )
        # In-flight claims of the dead process expire before those few are retried.
        await eventually(lambda: set(hook.seen_ids) >= expected, "every handoff delivered", 180)
    finally:
        procs.stop()
        await hook.stop()
    assert set(hook.seen_ids) == expected  # nothing lost, nothing foreign
    assert hook.rejected == 0  # every delivery signed correctly
    repeated = {i for i, n in hook.seen_ids.items() if n > 1}
    lanes = settings.fast_lane_concurrency + settings.routine_lane_concurrency
    assert len(repeated) <= lanes, f"{len(repeated)} repeated deliveries: more than in flight"
    assert len(hook.deliveries) == BURST  # the receiver's dedupe leaves exactly one each
