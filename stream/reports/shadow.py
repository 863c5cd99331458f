"""`whatif --from-topic leads.shadow`: the live model against its shadow, on what really happened.

With `LEADSTREAM_SHADOW_MODEL` the worker scores a candidate beside the live model and writes
its transitions to `leads.shadow` (stream/pipeline/shadow.py). This compares, with the what-if's
own report, the live model's transitions as they went out on `leads.handoff` (the baseline)
with the shadow's (the candidate) — no replay: both sides are what the worker decided on the
live stream. The channel topics give the history the report cites (first touches, the events
behind a transition). Live transitions from before the shadow's first one are left out: a
shadow switched on later has nothing to compare them with.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from stream.pipeline.replay import ReplayStats
from stream.reports.errors import ReportError
from stream.reports.history import History
from stream.reports.runs import Run
from stream.scoring.events import parse_time, us_to_t
from stream.scoring.model import Model
from stream.settings import Settings
from stream.topics import Topics


def is_shadow_topic(settings: Settings, topics: Iterable[str]) -> bool:
    names = set(topics)
    shadow = Topics.from_settings(settings).shadow
    if shadow in names or "leads.shadow" in names:
        if len(names) > 1:
            raise ReportError(
                f"--from-topic {shadow} compares the live model with its shadow on their own "
                "transitions: give it alone (no history files, no other topic)"
            )
        return True
    return False


def from_handoff(data: Mapping[str, Any]) -> dict[str, Any]:
    """A `leads.handoff` record's data as a replay transition line."""
    route = data.get("route") or {}
    return {
        "kind": "transition",
        "lead_id": data["lead_id"],
        "at": data["at"],
        "from": data["from_stage"],
        "to": data["to_stage"],
        "reason": data["reason"],
        "engagement": data["engagement"]["score"],
        "groups": data["engagement"].get("groups", {}),
        "fit": data["fit"]["score"],
        "grade": data["fit"]["grade"],
        "route": route.get("queue"),
        "priority": route.get("priority"),
        "sla": route.get("sla"),
        "task": route.get("task"),
        "bant": data.get("bant", {}),
        "top_contributors": data.get("top_contributors", []),
        "model_version": data["model_version"],
        "seq": data["seq"],
        "trigger_event_ids": data.get("trigger_event_ids", []),
        "threshold": data.get("threshold"),
    }


def as_run(model: Model, transitions: list[dict[str, Any]], events: int) -> Run:
    """A Run of transitions the worker made: each lead's last transition gives its line."""
    ordered = sorted(
        {(tr["lead_id"], tr["seq"]): tr for tr in transitions}.values(),  # at-least-once
        key=lambda tr: (tr["t"], tr["lead_id"], tr["seq"]),
    )
    leads: dict[str, dict[str, Any]] = {}
    for tr in ordered:
        leads[tr["lead_id"]] = {
            "kind": "lead",
            "lead_id": tr["lead_id"],
            "stage": tr["to"],
            "grade": tr["grade"],
            "types": {c["type"]: c["value"] for c in tr["top_contributors"]},
        }
    return Run(model, ordered, leads, {}, ReplayStats(events=events))


def _t(tr: dict[str, Any]) -> dict[str, Any]:
    tr["t"] = us_to_t(parse_time(tr["at"], "at"))
    return tr


async def read_sides(settings: Settings) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(live transitions from leads.handoff, shadow transitions from leads.shadow)."""
    from stream.reports.kafka import read_topic_records

    topics = Topics.from_settings(settings)
    live = [
        _t(from_handoff(orjson.loads(line)))
        for _where, line in await read_topic_records(settings, [topics.handoff])
    ]
    shadow = [
        _t(orjson.loads(line))
        for _where, line in await read_topic_records(settings, [topics.shadow])
    ]
    return live, shadow


def shadow_runs(
    settings: Settings, baseline: Model, candidate: Model, history: History
) -> tuple[Run, Run]:
    """The live and shadow Runs, over the time the shadow has been writing."""
    from aiokafka.errors import KafkaError

    try:
        live, shadow = asyncio.run(read_sides(settings))
    except (KafkaError, OSError) as exc:
        raise ReportError(
            f"--from-topic: cannot read from {settings.kafka_bootstrap} ({exc}); check "
            "LEADSTREAM_KAFKA_BOOTSTRAP and that the broker is up"
        ) from None
    if not shadow:
        raise ReportError(
            f"{Topics.from_settings(settings).shadow} is empty: run the worker with "
            "LEADSTREAM_SHADOW_MODEL set, and compare once it has scored some traffic"
        )
    since = min(tr["t"] for tr in shadow)
    live = [tr for tr in live if tr["t"] >= since]
    events = len(history.lines)
    return as_run(baseline, live, events), as_run(candidate, shadow, events)
