"""The documented downstream example receives SQL handoffs only, filtered on headers."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from typing import Any

import pytest

from stream.pipeline.handoff import handoff_record
from stream.scoring.explain import Transition
from stream.settings import Settings
from stream.topics import Topics
from tests.kafka_helpers import produce_records

pytestmark = pytest.mark.integration
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "subscribe_sql.py"


def transition(lead: str, seq: int, to_stage: str, reason: str) -> Transition:
    return Transition(
        lead_id=lead,
        seq=seq,
        at=20500.5,
        from_stage="mql",
        to_stage=to_stage,
        reason=reason,
        engagement=50.0,
        groups={"decision": 30.0},
        fit=80.0,
        grade="A",
        threshold=None,
        route="ae",
        priority="P2",
        sla="P1D",
        task=None,
        bant={"budget": True, "authority": True, "need": True, "timeline": True},
        top_contributors=(("trial.signup", 20.0),),
        model_version="default-b2b@1.0.0",
        trigger_event_ids=("e1",),
    )


async def test_only_sql_handoffs_reach_the_handler(settings: Settings) -> None:
    spec = importlib.util.spec_from_file_location("subscribe_sql", EXAMPLE)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    topic = Topics.from_settings(settings).handoff
    await produce_records(
        settings.kafka_bootstrap,
        topic,
        [
            handoff_record(transition("u1", 1, "sales_ready", "handoff")),
            handoff_record(transition("u1", 2, "sql", "accepted")),
            handoff_record(transition("u2", 1, "sql", "accepted")),
            handoff_record(transition("u2", 2, "sql", "sla_breached")),  # a breach, not a change
        ],
    )
    got: list[tuple[str, dict[str, Any]]] = []
    stop = asyncio.Event()

    async def handle(ce_id: str, data: dict[str, Any]) -> None:
        got.append((ce_id, data))
        if len(got) == 2:
            stop.set()

    await asyncio.wait_for(
        example.subscribe(settings.kafka_bootstrap, "t-sql", handle, topic=topic, stop=stop), 60
    )
    assert sorted((d["lead_id"], d["seq"]) for _, d in got) == [("u1", 2), ("u2", 1)]
