"""The what-if comparison: one history replayed under a baseline and a candidate model.

Everything here is counted from the two replays' transition and lead lines, so the report
shows what each model would have done live, side by side: MQLs and sales-ready handoffs per
week, handoffs per route and priority per day (the SDR and AE workload), grade mix, time from
first touch to MQL, fast-lane and SLA counts, and the leads whose stage path differs — the
largest difference first, each with the evidence of both models (the transitions with their
engagement, threshold, grade, top contributors and the events that triggered them).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from stream.reports.history import History
from stream.reports.runs import Run, first_touches, is_stage_change
from stream.scoring.events import EPOCH, t_to_us
from stream.times import format_us

SIDES = ("baseline", "candidate")
HANDOFF_STAGES = frozenset({"mql", "sales_ready"})
MAX_CHANGED = 200
"""Changed leads listed with their evidence (all are counted)."""


def _day(t: float) -> date:
    return (EPOCH + timedelta(days=t)).date()


def _week(t: float) -> date:
    day = _day(t)
    return day - timedelta(days=day.weekday())  # the Monday of its ISO week


def _span(days: Iterable[date], step: int) -> list[date]:
    """Every day (step 1) or Monday (step 7) from the first to the last one given."""
    ordered = sorted(set(days))
    if not ordered:
        return []
    out, at = [], ordered[0]
    while at <= ordered[-1]:
        out.append(at)
        at += timedelta(days=step)
    return out


def _pct(new: float, old: float) -> float | None:
    if old == 0:
        return 0.0 if new == 0 else None
    return round(100.0 * (new - old) / old, 2)


def _handoffs(run: Run) -> list[dict[str, Any]]:
    """Transitions that give sales work: a route, and not an escalation."""
    return [tr for tr in run.transitions if tr["route"] and tr["reason"] != "sla_breached"]


def side_numbers(run: Run, touches: Mapping[str, float]) -> dict[str, Any]:
    """Counts of one replay, the per-model half of the summary."""
    changes = [tr for tr in run.transitions if is_stage_change(tr)]
    mql = [tr for tr in changes if tr["to"] == "mql"]
    ready = [tr for tr in changes if tr["to"] == "sales_ready"]
    handoffs = _handoffs(run)
    first_mql: dict[str, float] = {}
    for tr in mql:
        first_mql.setdefault(tr["lead_id"], tr["t"])
    days_to_mql = sorted(
        round(at - touches[lead], 4) for lead, at in first_mql.items() if lead in touches
    )
    handed: dict[str, str] = {}
    for tr in changes:
        if tr["to"] in HANDOFF_STAGES:
            handed.setdefault(tr["lead_id"], tr["grade"])
    return {
        "model": run.model.ref,
        "thresholds": dict(run.model.rules.mql_thresholds),
        "mqls": len(mql),
        "mql_leads": len(first_mql),
        "sales_ready": len(ready),
        "handoffs": len(handoffs),
        "fast_lane": sum(1 for tr in changes if tr["reason"] == "fast_lane"),
        "sla_breaches": sum(1 for tr in run.transitions if tr["reason"] == "sla_breached"),
        "handoffs_by_sla": dict(Counter(str(tr["sla"]) for tr in handoffs)),
        "handoffs_by_route": dict(Counter(f"{tr['route']}/{tr['priority']}" for tr in handoffs)),
        "grade_mix_handed_over": dict(sorted(Counter(handed.values()).items())),
        "grade_mix_all": dict(
            sorted(Counter(lead["grade"] for lead in run.leads.values()).items())
        ),
        "stages_at_end": dict(Counter(lead["stage"] for lead in run.leads.values())),
        "days_to_mql": days_to_mql,
        "median_days_to_mql": round(statistics.median(days_to_mql), 3) if days_to_mql else None,
        "_mql": mql,
        "_ready": ready,
        "_handoffs": handoffs,
    }


def _series(items: Sequence[dict[str, Any]], key: Any, axis: list[date], bucket: Any) -> list[int]:
    counts = Counter(bucket(tr["t"]) for tr in items if key(tr))
    return [counts.get(at, 0) for at in axis]


def _edit_distance(a: Sequence[Any], b: Sequence[Any]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def _evidence(tr: Mapping[str, Any], history: History) -> dict[str, Any]:
    triggers = []
    for event_id in tr.get("trigger_event_ids") or ():
        event = history.events.get(event_id)
        triggers.append(
            {
                "event_id": event_id,
                "type": event.type if event else None,
                "at": _iso(event.at) if event else None,
            }
        )
    return {
        "at": tr["at"],
        "from": tr["from"],
        "to": tr["to"],
        "reason": tr["reason"],
        "engagement": round(tr["engagement"], 2),
        "threshold": tr.get("threshold"),
        "grade": tr["grade"],
        "fit": tr["fit"],
        "route": tr["route"],
        "priority": tr["priority"],
        "top_contributors": tr["top_contributors"],
        "triggers": triggers,
    }


def _iso(t: float) -> str:
    return format_us(t_to_us(t), "s")


def _path(items: Sequence[dict[str, Any]]) -> list[str]:
    return [tr["to"] for tr in items if is_stage_change(tr)]


def _why(
    lead: str,
    base: Sequence[dict[str, Any]],
    cand: Sequence[dict[str, Any]],
    runs: Mapping[str, Run],
) -> str:
    """One sentence: the first step where the two stage paths part, and each model's reason."""
    b = [tr for tr in base if is_stage_change(tr)]
    c = [tr for tr in cand if is_stage_change(tr)]
    i = 0
    while i < min(len(b), len(c)) and (b[i]["to"], b[i]["reason"]) == (c[i]["to"], c[i]["reason"]):
        i += 1
    parts = []
    for side, steps in (("baseline", b), ("candidate", c)):
        if i < len(steps):
            tr = steps[i]
            text = f"{side}: {tr['from']} → {tr['to']} ({tr['reason']}) on {tr['at'][:10]}"
            text += f", engagement {tr['engagement']:.1f}"
            if tr.get("threshold") is not None:
                text += f" ≥ {tr['threshold']:g} (grade {tr['grade']})"
            parts.append(text)
        else:
            grade = (steps[-1]["grade"] if steps else None) or runs[side].leads.get(lead, {}).get(
                "grade"
            )
            threshold = runs[side].model.rules.mql_thresholds.get(str(grade))
            limit = f"; grade {grade} threshold {threshold:g}" if threshold is not None else ""
            parts.append(f"{side}: no further stage change{limit}")
    return "; ".join(parts)


def _retimed(
    lead: str, base: Sequence[dict[str, Any]], cand: Sequence[dict[str, Any]]
) -> dict[str, Any] | None:
    """Same stage path, other times: the first step that moved, and by how much."""
    b = [tr for tr in base if is_stage_change(tr)]
    c = [tr for tr in cand if is_stage_change(tr)]
    for x, y in zip(b, c, strict=True):
        if x["at"] != y["at"]:
            return {
                "lead_id": lead,
                "step": f"{x['from']} → {x['to']}",
                "baseline_at": x["at"],
                "candidate_at": y["at"],
                "shift_days": round(y["t"] - x["t"], 3),
                "baseline_engagement": round(x["engagement"], 2),
                "candidate_engagement": round(y["engagement"], 2),
            }
    return None


def _first_handoff(items: Sequence[dict[str, Any]]) -> float | None:
    """When the lead first entered a handoff stage (an escalation there is not an entry)."""
    return next(
        (tr["t"] for tr in items if tr["to"] in HANDOFF_STAGES and is_stage_change(tr)), None
    )


def changed_leads(
    runs: Mapping[str, Run], history: History
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Leads whose stage path differs, largest difference first; and the retimed ones (same
    path, a stage reached at another time), largest shift first."""
    base_by, cand_by = runs["baseline"].by_lead(), runs["candidate"].by_lead()
    out: list[dict[str, Any]] = []
    retimed: list[dict[str, Any]] = []
    for lead in dict.fromkeys([*base_by, *cand_by]):
        base, cand = base_by.get(lead, []), cand_by.get(lead, [])
        bp, cp = _path(base), _path(cand)
        if bp == cp:
            moved = _retimed(lead, base, cand)
            if moved is not None:
                retimed.append(moved)
            continue
        first_b = _first_handoff(base)
        first_c = _first_handoff(cand)
        shift = abs(first_b - first_c) if first_b is not None and first_c is not None else 0.0
        out.append(
            {
                "lead_id": lead,
                "distance": _edit_distance(bp, cp),
                "handoff_shift_days": round(shift, 3),
                "baseline_path": bp,
                "candidate_path": cp,
                "why": _why(lead, base, cand, runs),
                "baseline": [_evidence(tr, history) for tr in base],
                "candidate": [_evidence(tr, history) for tr in cand],
                "types_at_end": {
                    side: {
                        k: round(v, 2)
                        for k, v in runs[side].leads.get(lead, {}).get("types", {}).items()
                    }
                    for side in SIDES
                },
            }
        )
    out.sort(key=lambda d: (-d["distance"], -d["handoff_shift_days"], d["lead_id"]))
    retimed.sort(key=lambda d: (-abs(d["shift_days"]), d["lead_id"]))
    return out, retimed


def compare(history: History, baseline: Run, candidate: Run) -> dict[str, Any]:
    """The what-if summary (JSON-ready): per model numbers, series for the plots, changed leads
    and the flat `metrics` that --fail-if expressions name."""
    runs = {"baseline": baseline, "candidate": candidate}
    touches = first_touches(baseline, history)
    sides = {name: side_numbers(run, touches) for name, run in runs.items()}
    weeks = _span((_week(tr["t"]) for s in sides.values() for tr in s["_mql"] + s["_ready"]), 7)
    days = _span((_day(tr["t"]) for s in sides.values() for tr in s["_handoffs"]), 1)
    queues = sorted({q for s in sides.values() for q in s["handoffs_by_route"]})
    weekly = {
        name: {
            "mql": _series(s["_mql"], lambda tr: True, weeks, _week),
            "sales_ready": _series(s["_ready"], lambda tr: True, weeks, _week),
        }
        for name, s in sides.items()
    }
    daily = {
        name: {
            q: _series(
                s["_handoffs"], lambda tr, q=q: f"{tr['route']}/{tr['priority']}" == q, days, _day
            )
            for q in queues
        }
        for name, s in sides.items()
    }
    changed, retimed = changed_leads(runs, history)
    b, c = sides["baseline"], sides["candidate"]
    metrics: dict[str, float | None] = {}
    for name in ("mqls", "mql_leads", "sales_ready", "handoffs", "fast_lane", "sla_breaches"):
        metrics[f"baseline_{name}"] = b[name]
        metrics[f"candidate_{name}"] = c[name]
    for name, key in (
        ("mql", "mqls"),
        ("sales_ready", "sales_ready"),
        ("handoffs", "handoffs"),
        ("fast_lane", "fast_lane"),
        ("sla_breaches", "sla_breaches"),
    ):
        metrics[f"{name}_change"] = c[key] - b[key]
        metrics[f"{name}_change_pct"] = _pct(c[key], b[key])
    leads = len(baseline.leads)
    metrics["leads"] = leads
    metrics["leads_changed"] = len(changed)
    metrics["leads_changed_pct"] = round(100.0 * len(changed) / leads, 2) if leads else 0.0
    metrics["leads_retimed"] = len(retimed)
    shifts = [r["shift_days"] for r in retimed]
    metrics["median_retime_days"] = round(statistics.median(shifts), 3) if shifts else 0.0
    metrics["baseline_median_days_to_mql"] = b["median_days_to_mql"]
    metrics["candidate_median_days_to_mql"] = c["median_days_to_mql"]
    for s in sides.values():
        for private in ("_mql", "_ready", "_handoffs"):
            del s[private]
    return {
        "kind": "whatif",
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "history": {
            "lines": len(history.lines),
            "events": baseline.stats.events,
            "bad_lines": baseline.stats.bad_lines,
            "after_until": baseline.stats.after_until,
            "leads": leads,
        },
        "metrics": metrics,
        "baseline": b,
        "candidate": c,
        "weekly": {"weeks": [w.isoformat() for w in weeks], **weekly},
        "daily_handoffs": {"days": [d.isoformat() for d in days], "queues": queues, **daily},
        "changed": changed[:MAX_CHANGED],
        "changed_total": len(changed),
        "retimed": retimed[:MAX_CHANGED],
    }


METRIC_NAMES = (
    *(f"{side}_{n}" for n in ("mqls", "mql_leads", "sales_ready", "handoffs", "fast_lane",
                               "sla_breaches", "median_days_to_mql") for side in SIDES),
    *(f"{n}_change{p}" for n in ("mql", "sales_ready", "handoffs", "fast_lane", "sla_breaches")
      for p in ("", "_pct")),
    "leads", "leads_changed", "leads_changed_pct", "leads_retimed", "median_retime_days",
)  # fmt: skip
"""Every name a --fail-if expression may use (the keys of `summary["metrics"]`)."""
