"""The threshold review: what sales did with the leads the model handed over, from history.

The review replays history under the current model (the one that made the handoffs), finds
each lead's first handoff (by score or fast lane) and the sales outcomes that followed, and
measures: MQL → accepted → SQL → opportunity → won by score band and grade, rejection reasons
by band, time to first sales touch against the handoff's SLA, precision and recall of the
current thresholds against "accepted by sales" and "opportunity created" (Wilson intervals),
and a suggested threshold per grade for the stated objective, with the MQL volume it would
produce (a what-if of the current model against the suggested one).

Fast-lane leads are counted in the funnel but not in the threshold's precision and recall:
they asked for sales, and no threshold decided about them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stream.reports.components import Layout
from stream.reports.errors import RefusedLines
from stream.reports.history import History
from stream.reports.plan import Sweep
from stream.reports.pool import Replays
from stream.reports.runs import Run, attribute, is_stage_change
from stream.reports.stats import ratio, wilson
from stream.reports.sweep import (
    GradeSweep,
    Objective,
    Volume,
    grade_sweep,
    parse_grid,
    suggest,
)
from stream.reports.whatif import compare
from stream.scoring import events as ev
from stream.scoring.model import Model, sla_us

OUTCOME_TYPES = frozenset(
    {
        ev.SALES_ACCEPTED,
        ev.SALES_REJECTED,
        ev.SALES_NO_DECISION,
        ev.OPPORTUNITY_CREATED,
        ev.OPPORTUNITY_WON,
        ev.OPPORTUNITY_LOST,
    }
)
FUNNEL = ("handed_over", "accepted", "sql", "opportunity", "won")
TARGETS = {"accepted": "accepted by sales", "opportunity": "opportunity created"}


@dataclass
class LeadOutcome:
    """One lead: its first handoff and what sales did afterwards."""

    lead_id: str
    grade: str
    handoff_at: float | None = None
    entry: str | None = None  # score | fast_lane
    engagement: float | None = None
    sla: str | None = None
    first_touch: float | None = None
    accepted: bool = False
    sql: bool = False
    opportunity: bool = False
    won: bool = False
    rejections: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ReviewOptions:
    """How the review is made; every field is a command-line option."""

    objective: Objective = field(default_factory=lambda: Objective("f1"))
    target: str = "accepted"
    band_width: float = 10.0
    grid: tuple[float, float, float] = parse_grid(None)
    seed: int = 7
    jobs: int = 1
    """Worker processes for the replays (1: all in this process)."""
    progress: bool | None = False
    """A progress bar on stderr (None: when stderr is a terminal)."""
    shortcut: bool = True
    """Replay only the components a threshold can change (False: the whole history for
    every threshold; the numbers are the same, `stream.reports.plan`)."""


def outcomes(run: Run, history: History) -> dict[str, LeadOutcome]:
    """Every lead's first handoff and the sales outcomes of history, by lead id."""
    out = {lead: LeadOutcome(lead, str(line["grade"])) for lead, line in run.leads.items()}
    for tr in run.transitions:
        lead = out.get(tr["lead_id"])
        if lead is None or not is_stage_change(tr):
            continue
        if lead.handoff_at is None and tr["to"] in ("mql", "sales_ready"):
            lead.handoff_at, lead.engagement = tr["t"], tr["engagement"]
            lead.entry = "fast_lane" if tr["reason"] == "fast_lane" else "score"
            lead.grade, lead.sla = tr["grade"], tr["sla"]
        lead.sql |= tr["to"] == "sql"
    placed = attribute(run, history, lambda e: e.type in OUTCOME_TYPES)
    for event_id, lead_id in sorted(placed.items(), key=lambda kv: history.events[kv[0]].at):
        event, lead = history.events[event_id], out.get(lead_id)
        if lead is None:
            continue
        if lead.first_touch is None and lead.handoff_at is not None and event.at >= lead.handoff_at:
            lead.first_touch = event.at
        if event.type == ev.SALES_ACCEPTED:
            lead.accepted = True
        elif event.type == ev.SALES_REJECTED:
            lead.rejections.append(event.reason or "unspecified")
        elif event.type == ev.OPPORTUNITY_CREATED:
            lead.opportunity = True
        elif event.type == ev.OPPORTUNITY_WON:
            lead.won = lead.opportunity = True
    return out


def band_of(engagement: float, width: float) -> str:
    low = int(engagement // width * width)
    return f"{low}–{low + int(width)}"


def _funnel(leads: Sequence[LeadOutcome]) -> dict[str, Any]:
    counts = {
        "handed_over": len(leads),
        "accepted": sum(x.accepted for x in leads),
        "sql": sum(x.sql for x in leads),
        "opportunity": sum(x.opportunity for x in leads),
        "won": sum(x.won for x in leads),
    }
    rates = {k: ratio(counts[k], len(leads)) for k in FUNNEL[1:]}
    return {
        "counts": counts,
        "rates": rates,
        "acceptance_interval": wilson(counts["accepted"], len(leads)),
    }


def _sla(leads: Sequence[LeadOutcome], run: Run) -> dict[str, Any]:
    met = missed = untouched = 0
    hours: list[float] = []
    for lead in leads:
        due = sla_us(lead.sla) if lead.sla else None
        if due is None or lead.handoff_at is None:
            continue
        if lead.first_touch is None:
            untouched += 1
            continue
        delay_h = (lead.first_touch - lead.handoff_at) * 24
        hours.append(round(delay_h, 3))
        if delay_h * 3_600_000_000 <= due:
            met += 1
        else:
            missed += 1
    return {
        "met": met,
        "missed": missed,
        "untouched": untouched,
        "hours_to_first_touch": sorted(hours),
        "escalations": sum(1 for tr in run.transitions if tr["reason"] == "sla_breached"),
        "met_rate": ratio(met, met + missed + untouched),
    }


def precision_recall(
    leads: Sequence[LeadOutcome], mql: frozenset[str], positive: Mapping[str, bool]
) -> dict[str, Any]:
    """Precision and recall of "became an MQL by score" against an outcome, with intervals."""
    tp = sum(1 for x in leads if x.lead_id in mql and positive[x.lead_id])
    fp = sum(1 for x in leads if x.lead_id in mql and not positive[x.lead_id])
    fn = sum(1 for x in leads if x.lead_id not in mql and positive[x.lead_id])
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": ratio(tp, tp + fp),
        "precision_interval": wilson(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "recall_interval": wilson(tp, tp + fn),
    }


def review(history: History, model: Model, options: ReviewOptions) -> dict[str, Any]:
    """The review summary (JSON-ready): funnel, reasons, SLA, precision/recall, suggestions.

    Raises RefusedLines when the replay refuses lines the line checks let through."""
    thresholds = model.rules.mql_thresholds
    known: dict[str, Any] = {}

    def on_base(run: Run) -> dict[str, tuple[list[str], frozenset[str]]]:
        if run.errors:
            raise RefusedLines(run.errors)
        by_lead = outcomes(run, history)
        judged = [x for x in by_lead.values() if x.grade in thresholds and x.entry != "fast_lane"]
        positive = {
            target: {
                x.lead_id: (x.accepted if target == "accepted" else x.opportunity) for x in judged
            }
            for target in TARGETS
        }
        good = frozenset(k for k, v in positive[options.target].items() if v)
        known.update(by_lead=by_lead, judged=judged, positive=positive)
        populations = {g: [x.lead_id for x in judged if x.grade == g] for g in thresholds}
        return {g: (leads, good) for g, leads in populations.items() if leads}

    def sweep_of(grade: str, volumes: Mapping[float, Volume]) -> GradeSweep:
        leads, good = plan.swept[grade]
        return grade_sweep(grade, float(thresholds[grade]), leads, good, volumes)

    def best(grade: str, volumes: dict[float, Volume]) -> float | None:
        return options.objective.best(sweep_of(grade, volumes).rows(), float(thresholds[grade]))

    with Replays(history.lines, options.jobs, progress=options.progress, label="review") as replays:
        plan = Sweep(history, model, options.grid, replays, best, options.shortcut)
        plan.start(on_base)
        if options.shortcut:  # made while the first whole replays run
            plan.use(Layout.of(history))
        replays.wait()
        suggestions = {
            grade: suggest(sweep_of(grade, plan.volumes(grade)), options.objective, options.seed)
            for grade in plan.swept
        }
        chosen = {g: s["suggested"] for g, s in suggestions.items() if s["suggested"] is not None}
        if chosen:
            plan.suggest(chosen)
            replays.wait()
    run = plan.base
    assert run is not None
    by_lead, judged, positive = known["by_lead"], known["judged"], known["positive"]
    handed = [x for x in by_lead.values() if x.handoff_at is not None]
    width = options.band_width
    bands: dict[str, list[LeadOutcome]] = defaultdict(list)
    grades: dict[str, list[LeadOutcome]] = defaultdict(list)
    reasons: dict[str, Counter[str]] = defaultdict(Counter)
    for lead in sorted(handed, key=lambda x: x.engagement or 0.0):
        band = band_of(lead.engagement or 0.0, width)
        bands[band].append(lead)
        grades[lead.grade].append(lead)
        reasons[band].update(lead.rejections)
    mql = frozenset(
        tr["lead_id"] for tr in run.transitions if tr["to"] == "mql" and tr["reason"] == "score"
    )
    quality = {
        target: {
            "overall": precision_recall(judged, mql, positive[target]),
            **{
                g: precision_recall([x for x in judged if x.grade == g], mql, positive[target])
                for g in thresholds
            },
        }
        for target in TARGETS
    }
    volume = None
    if chosen:
        assert plan.suggested is not None
        whatif = compare(history, run, plan.suggested)
        volume = {
            "thresholds": {**thresholds, **chosen},
            **{
                k: whatif["metrics"][k]
                for k in ("baseline_mqls", "candidate_mqls", "mql_change", "mql_change_pct",
                          "candidate_handoffs", "leads_changed")
            },
        }  # fmt: skip
    return {
        "kind": "review",
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model": model.ref,
        "thresholds": dict(thresholds),
        "history": {
            "lines": len(history.lines),
            "events": run.stats.events,
            "bad_lines": run.stats.bad_lines,
            "leads": len(run.leads),
        },
        "options": {
            "objective": str(options.objective),
            "target": options.target,
            "band_width": width,
            "grid": list(options.grid),
        },
        "funnel": _funnel(handed),
        "entries": dict(Counter(x.entry for x in handed)),
        "by_band": {b: _funnel(v) for b, v in bands.items()},
        "by_grade": {g: _funnel(v) for g, v in sorted(grades.items())},
        "rejections_by_band": {b: dict(c) for b, c in reasons.items() if c},
        "sla": _sla(handed, run),
        "quality": quality,
        "suggestions": suggestions,
        "suggested_volume": volume,
        "replays": plan.cost(),
    }
