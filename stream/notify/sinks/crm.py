"""CRM-task sink: a task for the owner queue, due at ce_time + SLA, with the route's priority."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import orjson

from stream.notify.sinks import Handoff, HttpSink, view
from stream.times import parse_duration, parse_rfc3339


def parse_sla(value: Any) -> timedelta | None:
    """SLA as a duration: seconds (number), ISO 8601 (`PT1H`, `P1D`) or short (`1h`, `4 h`,
    `1 day`, `30m`). None when absent or unreadable (then the task has no due date)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return parse_duration(value if isinstance(value, int | float) else str(value))
    except ValueError:
        return None


def crm_task(handoff: Handoff, link_template: str = "") -> dict[str, Any]:
    """The task body: `external_id` = ce_id so the CRM can dedupe, owner queue, due, priority."""
    route = handoff.data.get("route")
    route = route if isinstance(route, dict) else {}
    sla = parse_sla(route.get("sla"))
    due: datetime | None = None
    if sla is not None and handoff.time:
        try:
            due = parse_rfc3339(handoff.time) + sla
        except ValueError:
            due = None
    v = view(handoff, link_template)
    description = "\n".join(
        [*(f"{k}: {val}" for k, val in v.facts), "Why: " + "; ".join(v.reasons), "BANT: " + v.bant]
    )
    return {
        "external_id": handoff.ce_id,
        "type": handoff.ce_type,
        "lead_id": handoff.lead_id,
        "queue": route.get("queue") or handoff.queue,
        "priority": handoff.priority,
        "task": route.get("task"),
        "stage": handoff.to_stage,
        "due_at": due.isoformat().replace("+00:00", "Z") if due else None,
        "sla": route.get("sla"),
        "title": v.title,
        "description": description,
        "link": v.link or None,
    }


class CrmTaskSink(HttpSink):
    """POST a task as JSON; `Idempotency-Key: <ce_id>` for CRMs that dedupe on it."""

    name = "crm"

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        allow_private: bool,
        token: str = "",
        link_template: str = "",
    ) -> None:
        super().__init__(url, timeout=timeout, allow_private=allow_private)
        self._token = token
        self._link_template = link_template

    async def deliver(self, handoff: Handoff) -> None:
        headers = {"content-type": "application/json", "idempotency-key": handoff.ce_id}
        if self._token:
            headers["authorization"] = f"Bearer {self._token}"
        await self.post(orjson.dumps(crm_task(handoff, self._link_template)), headers)
