"""Which MQL threshold per grade the outcomes in history ask for, with an interval.

For each candidate threshold the history is replayed with that grade's threshold changed (the
other grades keep theirs), so "would this lead have become an MQL" is the engine's answer, with
the mofu guard, cooldowns and fit changes included — not a guess from one number per lead.
Which replays, sharing what, in which processes: `stream.reports.plan`.
The threshold that best meets the stated objective is the suggestion; a bootstrap over the
grade's leads (resampled with replacement, seeded) gives its 95 % interval.

Objectives: `f1` (balance of precision and recall against the target outcome), `acceptance:X`
(the lowest threshold whose MQLs sales accepted at rate ≥ X: the most volume at that quality)
and `recall:X` (the highest threshold that still keeps a share ≥ X of the good leads).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stream.reports.errors import ReportError
from stream.reports.runs import is_stage_change
from stream.reports.stats import f1, percentile, ratio

DEFAULT_GRID = (20.0, 80.0, 5.0)
BOOTSTRAP = 400


@dataclass(frozen=True)
class Objective:
    """What the suggested threshold should achieve."""

    kind: str  # f1 | acceptance | recall
    target: float | None = None

    @classmethod
    def parse(cls, text: str) -> Objective:
        name, _, raw = text.strip().lower().partition(":")
        name = "acceptance" if name == "precision" else name
        if name == "f1" and not raw:
            return cls("f1")
        if name in ("acceptance", "recall") and raw:
            try:
                value = float(raw.rstrip("%")) / (100.0 if raw.endswith("%") else 1.0)
            except ValueError:
                value = -1.0
            if 0.0 < value <= 1.0:
                return cls(name, value)
        raise ReportError(
            f"--objective {text!r}: want f1, acceptance:RATE or recall:RATE "
            "(RATE like 0.6 or 60%), e.g. --objective acceptance:0.6"
        )

    def __str__(self) -> str:
        return self.kind if self.target is None else f"{self.kind} ≥ {self.target:.0%}"

    def best(self, rows: Sequence[tuple[float, int, int, int]], current: float) -> float | None:
        """The chosen threshold among (threshold, tp, fp, fn) rows sorted by threshold.

        None when history cannot tell: no good lead at all, or F1 zero everywhere. F1 ties
        (thresholds between two leads' scores pick the same MQLs) go to the one nearest the
        current threshold, then the lower: the smallest change that does as well.
        """
        if self.kind == "f1":
            scored = [
                (score, -abs(th - current), -th)
                for th, tp, fp, fn in rows
                if (score := f1(tp, fp, fn))
            ]
            return -max(scored)[2] if scored else None
        assert self.target is not None
        if self.kind == "acceptance":
            ok = [th for th, tp, fp, _ in rows if tp + fp and tp / (tp + fp) >= self.target]
            return min(ok) if ok else None
        ok = [th for th, tp, _, fn in rows if tp + fn and tp / (tp + fn) >= self.target]
        return max(ok) if ok else None


def parse_grid(text: str | None) -> tuple[float, float, float]:
    """`FROM:TO:STEP` (e.g. 20:80:5) of thresholds to try."""
    if not text:
        return DEFAULT_GRID
    try:
        low, high, step = (float(x) for x in text.split(":"))
    except ValueError:
        low, high, step = 0.0, -1.0, 0.0
    if not (step > 0 and low <= high and high - low <= 200 * step):
        raise ReportError(f"--grid {text!r}: want FROM:TO:STEP, e.g. 20:80:5 (at most 200 steps)")
    return low, high, step


@dataclass
class GradeSweep:
    """The sweep of one grade: who becomes an MQL at each threshold tried."""

    grade: str
    current: float
    leads: list[str]
    positives: frozenset[str]
    mqls: dict[float, frozenset[str]]
    mql_counts: dict[float, int]
    """Transitions into mql of the replay at that threshold (every grade): the volume. An SLA
    escalation of a lead sitting in mql (`to` = mql, reason sla_breached) is not one."""

    _index: tuple[tuple[float, ...], dict[str, tuple[bool, tuple[int, ...]]]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def _where(self, thresholds: tuple[float, ...]) -> dict[str, tuple[bool, tuple[int, ...]]]:
        """Lead -> (good, positions of the thresholds at which it is an MQL): each lead's
        row once, so a bootstrap sample costs its leads, not leads × thresholds."""
        if self._index is None or self._index[0] != thresholds:
            where = {
                lead: (
                    lead in self.positives,
                    tuple(j for j, th in enumerate(thresholds) if lead in self.mqls[th]),
                )
                for lead in self.leads
            }
            self._index = (thresholds, where)
        return self._index[1]

    def rows(self, weights: Mapping[str, int] | None = None) -> list[tuple[float, int, int, int]]:
        """(threshold, tp, fp, fn) per threshold; `weights` counts leads (a bootstrap sample)."""
        w = weights or dict.fromkeys(self.leads, 1)
        thresholds = tuple(sorted(self.mqls))
        where = self._where(thresholds)
        tp = [0] * len(thresholds)
        fp = [0] * len(thresholds)
        pos = 0
        for lead, n in w.items():
            good, at = where.get(lead) or (lead in self.positives, ())
            if good:
                pos += n
            counts = tp if good else fp
            for j in at:
                counts[j] += n
        return [(th, tp[j], fp[j], pos - tp[j]) for j, th in enumerate(thresholds)]


Volume = tuple[frozenset[str], int]
"""What the sweep reads of one replay: the leads that became MQLs by score, and the number of
transitions into mql (every grade; an SLA escalation of a lead sitting in mql is not one)."""


def volume(transitions: Iterable[Mapping[str, Any]]) -> Volume:
    leads: set[str] = set()
    entries = 0
    for tr in transitions:
        if tr["to"] == "mql" and is_stage_change(tr):
            entries += 1
            if tr["reason"] == "score":
                leads.add(tr["lead_id"])
    return frozenset(leads), entries


def grade_sweep(
    grade: str,
    current: float,
    leads: Sequence[str],
    positives: frozenset[str],
    volumes: Mapping[float, Volume],
) -> GradeSweep:
    """Who becomes an MQL at each threshold tried, from each threshold's replay."""
    population = frozenset(leads)
    sweep = GradeSweep(grade, current, list(leads), positives, {}, {})
    for th, (mqls, entries) in volumes.items():
        sweep.mqls[th] = mqls & population
        sweep.mql_counts[th] = entries
    return sweep


def suggest(sweep: GradeSweep, objective: Objective, seed: int = 7) -> dict[str, Any]:
    """The suggested threshold, its bootstrap interval, and precision/recall at it."""
    rows = sweep.rows()
    best = objective.best(rows, sweep.current)
    rng = random.Random(f"leadstream-review/{seed}/{sweep.grade}")
    picks: list[float] = []
    if best is not None and sweep.leads:
        for _ in range(BOOTSTRAP):
            weights: dict[str, int] = {}
            for lead in rng.choices(sweep.leads, k=len(sweep.leads)):
                weights[lead] = weights.get(lead, 0) + 1
            pick = objective.best(sweep.rows(weights), sweep.current)
            if pick is not None:
                picks.append(pick)
    picks.sort()
    at_best = next((r for r in rows if r[0] == best), None)
    table = [
        {
            "threshold": th,
            "mqls": tp + fp,
            "precision": ratio(tp, tp + fp),
            "recall": ratio(tp, tp + fn),
            "f1": f1(tp, fp, fn),
            "mql_volume": sweep.mql_counts[th],
        }
        for th, tp, fp, fn in rows
    ]
    return {
        "grade": sweep.grade,
        "current": sweep.current,
        "objective": str(objective),
        "leads": len(sweep.leads),
        "positives": len(sweep.positives & frozenset(sweep.leads)),
        "suggested": best,
        "interval": [percentile(picks, 0.025), percentile(picks, 0.975)] if picks else None,
        "bootstrap_samples": len(picks),
        "precision": ratio(at_best[1], at_best[1] + at_best[2]) if at_best else None,
        "recall": ratio(at_best[1], at_best[1] + at_best[3]) if at_best else None,
        "table": table,
    }
