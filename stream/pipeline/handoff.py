"""A stage change as a CloudEvent in Kafka binary mode (`ce_*` headers, JSON data as value)."""

from __future__ import annotations

from typing import Any

import orjson

from stream.pipeline.cloudevent import binary_headers, event_id
from stream.scoring import Transition
from stream.scoring.events import t_to_us
from stream.scoring.stages import SLA_BREACHED
from stream.times import format_us

CE_TYPE = "leadstream.lead.stage_changed.v1"
SLA_BREACHED_CE_TYPE = "leadstream.lead.sla_breached.v1"


def ce_id(lead_id: str, seq: int) -> str:
    """The handoff's id: a lead's transition number `seq` is one fact, whoever replays it."""
    return event_id(f"{lead_id}:{seq}")


def ce_type(tr: Transition) -> str:
    """An SLA escalation is its own event type; every other transition is a stage change."""
    return SLA_BREACHED_CE_TYPE if tr.reason == SLA_BREACHED else CE_TYPE


def rfc3339(t_days: float) -> str:
    """Model time as handoffs publish it: RFC 3339 UTC with milliseconds."""
    return format_us(t_to_us(t_days), "ms")


def handoff_data(tr: Transition) -> dict[str, Any]:
    """The `data` of the handoff event (schemas/handoff-data.schema.json)."""
    return {
        "lead_id": tr.lead_id,
        "seq": tr.seq,
        "at": rfc3339(tr.at),
        "from_stage": tr.from_stage,
        "to_stage": tr.to_stage,
        "reason": tr.reason,
        "fit": {"score": tr.fit, "grade": tr.grade},
        "engagement": {"score": tr.engagement, "groups": dict(tr.groups)},
        "threshold": tr.threshold,
        "top_contributors": [{"type": t, "value": v} for t, v in tr.top_contributors],
        "bant": dict(tr.bant),
        "route": {"queue": tr.route, "priority": tr.priority, "sla": tr.sla, "task": tr.task},
        "model_version": tr.model_version,
        "trigger_event_ids": list(tr.trigger_event_ids),
    }


def handoff_record(
    tr: Transition, received_at: str | None = None
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(key, value, headers): subscribers can filter on headers without parsing the body."""
    headers = binary_headers(
        ce_id=ce_id(tr.lead_id, tr.seq),
        ce_type=ce_type(tr),
        subject=f"lead/{tr.lead_id}",
        time=rfc3339(tr.at),
        extensions={
            "tostage": tr.to_stage,
            "fromstage": tr.from_stage,
            "priority": tr.priority or "",
            "route": tr.route or "",
            "modelversion": tr.model_version,
            "receivedat": received_at or "",
        },
    )
    return tr.lead_id.encode(), orjson.dumps(handoff_data(tr)), headers
