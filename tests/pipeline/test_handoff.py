"""Handoff CloudEvents: an SLA escalation is published as its own ce_type, and the worker's
tick scheduler fires it when the partition's stream time passes the due instant."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import pytest
import yaml

from stream.pipeline.handoff import (
    CE_TYPE,
    SLA_BREACHED_CE_TYPE,
    ce_id,
    ce_type,
    handoff_data,
    handoff_record,
)
from stream.pipeline.processor import Emit
from stream.scoring import LeadState, Model, Transition
from stream.scoring.events import parse_time, us_to_t
from stream.scoring.model import MODELS_DIR, parse_model
from tests.worker.cluster import CRM, Cluster

TRANSITION = Transition(
    lead_id="u1",
    seq=2,
    at=us_to_t(parse_time("2026-01-05T10:00:00Z")),
    from_stage="lead",
    to_stage="sales_ready",
    reason="fast_lane",
    engagement=30.0,
    groups={"decision": 30.0},
    fit=85.0,
    grade="A",
    threshold=None,
    route="ae",
    priority="P1",
    sla="PT1H",
    task=None,
    bant={"budget": None, "authority": True, "need": None, "timeline": None},
    top_contributors=(("sales.demo_requested", 30.0),),
    model_version="default-b2b@1.0.0",
    trigger_event_ids=("ask",),
)


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("sla_breached", SLA_BREACHED_CE_TYPE),
        ("fast_lane", CE_TYPE),
        ("handoff", CE_TYPE),
        ("decayed", CE_TYPE),
        ("not_ready", CE_TYPE),
    ],
)
def test_ce_type_by_reason(reason: str, expected: str) -> None:
    assert ce_type(replace(TRANSITION, reason=reason)) == expected


def test_breach_record_differs_only_in_type() -> None:
    breach = replace(
        TRANSITION,
        seq=3,
        at=us_to_t(parse_time("2026-01-05T11:00:00Z")),
        from_stage="sales_ready",
        reason="sla_breached",
        route="sales_manager",
    )
    key, value, headers = handoff_record(breach)
    h = {k: v.decode() for k, v in headers}
    assert key == b"u1"
    assert h["ce_type"] == "leadstream.lead.sla_breached.v1"
    assert h["ce_id"] == ce_id("u1", 3) != ce_id("u1", 2)
    assert (h["ce_fromstage"], h["ce_tostage"], h["ce_route"], h["ce_priority"]) == (
        "sales_ready",
        "sales_ready",
        "sales_manager",
        "P1",
    )
    assert h["ce_time"] == "2026-01-05T11:00:00.000Z"
    assert orjson.loads(value) == handoff_data(breach)
    # a stage change keeps its type
    assert dict(handoff_record(TRANSITION)[2])["ce_type"] == CE_TYPE.encode()


def sla_model() -> Model:
    raw = yaml.safe_load((MODELS_DIR / "default-b2b.yaml").read_text())
    raw["stages"]["escalation"] = {"route": "sales_manager", "priority": "P1", "sla": "PT1H"}
    return parse_model(yaml.safe_dump(raw), "sla-model")


class Worker:
    """The pipeline on one partition, tables as dicts, each record landed at once."""

    def __init__(self, model: Model) -> None:
        self.cluster = Cluster(1, model)
        self.states = self.cluster.states[0]
        self.offset = 0

    def feed(self, lead: str, event_type: str, when: str, **fields: Any) -> Emit:
        self.offset += 1
        body = {"event_id": f"e{self.offset}", "type": event_type, "occurred_at": when}
        body.update(user_id=lead, **fields)
        emit = self.cluster.send(body, CRM)
        assert not emit.deadletters
        return emit


def types(emit: Emit) -> list[tuple[str, str]]:
    """u1's handoffs (u2 only moves stream time; its own identify is not looked at)."""
    out = []
    for key, _value, headers in emit.handoffs:
        if key != b"u1":
            continue
        h = {k: v.decode() for k, v in headers}
        out.append((h["ce_type"], h["ce_time"]))
    return out


def test_worker_fires_the_breach_when_stream_time_passes_it() -> None:
    worker = Worker(sla_model())
    traits = {"seniority": "vp", "industry": "software", "country": "US"}
    worker.feed("u1", "identify", "2026-01-05T09:00:00Z", email="u1@example.com", traits=traits)
    # asks for sales at 10:00:20 → ae/P1/PT1H → due 11:00:20, timers round up: 11:01:00
    emit = worker.feed("u1", "meeting.requested", "2026-01-05T10:00:20Z")
    assert types(emit) == [(CE_TYPE, "2026-01-05T10:00:20.000Z")]
    # another lead of the partition moves stream time; at 11:01 exactly nothing fires yet
    assert types(worker.feed("u2", "web.page_view", "2026-01-05T11:00:50Z")) == []
    assert types(worker.feed("u2", "web.page_view", "2026-01-05T11:01:00Z")) == []
    emit = worker.feed("u2", "web.page_view", "2026-01-05T11:01:01Z")
    assert types(emit) == [(SLA_BREACHED_CE_TYPE, "2026-01-05T11:01:00.000Z")]
    (key, value, headers) = emit.handoffs[0]
    assert key == b"u1" and dict(headers)["ce_id"] == ce_id("u1", 3).encode()
    data = orjson.loads(value)
    assert (data["reason"], data["route"]["queue"], data["trigger_event_ids"]) == (
        "sla_breached",
        "sales_manager",
        ["e2"],
    )
    state = LeadState.decode(worker.states[b"u1"])
    assert state.sla_due is None and state.stage == "sales_ready"
    # once only
    assert types(worker.feed("u2", "web.page_view", "2026-01-06T12:00:00Z")) == []
