"""`leadstream learn`: read and check the history, collect decisions, fit, evaluate, write.

Everything that can be wrong with the input stops the command before any fitting (a
`ReportError`, exit 2): an unknown outcome, a model that does not load, a bad history line
(named), scikit-learn missing, and too few outcomes — the numbers found and needed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stream.learn import candidate as cand
from stream.learn import evaluate as ev
from stream.learn.features import OUTCOMES, Decision, Sample, collect, counts
from stream.learn.fit import MIN_SCALE, Learned, _sklearn, current_fit_points, learn
from stream.learn.report import learn_page
from stream.reports.commands import clean, load_history
from stream.reports.errors import ReportError
from stream.reports.history import History
from stream.scoring.model import Model, ModelError, load_model
from stream.settings import Settings

MIN_EACH = 100
"""Leads judged needed with the outcome, and without it (docs/model-changes.md, Learning)."""


@dataclass(frozen=True)
class Result:
    summary: dict[str, Any]
    seconds: float


def _model(path: str | None) -> Model:
    try:
        return load_model(path or None)
    except ModelError as exc:
        raise ReportError(f"current model: {exc}") from None


def enough(sample: Sample, outcome: str) -> tuple[int, int]:
    """(with, without) the outcome; refuses below `MIN_EACH` of either, saying both numbers."""
    positive, negative = counts(sample, outcome)
    if positive < MIN_EACH or negative < MIN_EACH:
        raise ReportError(
            f"too few outcomes to learn from: {positive} lead(s) with '{outcome}' and "
            f"{negative} without, among {len(sample.decisions)} leads judged "
            f"({sample.leads} leads, {sample.fast_lane} fast lane left out); need at least "
            f"{MIN_EACH} of each, so that the newer 30 % held out for the evaluation holds "
            "about 30 of each (docs/model-changes.md, Learning from outcomes)"
        )
    return positive, negative


def _scale_line(part: str, scale: float, what: str) -> str:
    if scale > MIN_SCALE:
        return f"  {what} points = today's + correction / {scale:.4f} (log-odds per {part} point)"
    return f"  {part} does not predict the outcome here ({scale:.4f} log-odds per point): kept"


def _weight_rows(
    before: dict[str, float],
    learned: Learned,
    after: dict[str, float],
    leads: dict[str, int],
    prefix: str = "",
) -> list[dict[str, Any]]:
    values = {**learned.weights.points, **learned.weights.fit_points}
    return [
        {
            "name": name,
            "before": before[name],
            "learned": values.get(name),
            "interval": learned.intervals.get(prefix + name),
            "after": after[name],
            "leads": leads.get(name, 0),
        }
        for name in before
    ]


def _candidate(
    model: Model, learned: Learned, comment: Sequence[str], source: str
) -> tuple[str, Model, dict[str, float], dict[str, float]]:
    points = cand.final_points(model, learned.weights.points)
    fit = cand.final_fit(current_fit_points(model), learned.weights.fit_points)
    text, built = cand.build(cand.candidate_raw(model, points, fit), comment, source)
    return text, built, points, fit


def _evaluate(
    model: Model, sample: Sample, outcome: str, seed: int
) -> tuple[dict[str, Any], Model]:
    train, test = ev.split(sample.decisions)

    def y(ds: Sequence[Decision]) -> list[int]:
        return [1 if sample.label(d, outcome) else 0 for d in ds]

    fitted = learn(train, lambda d: sample.label(d, outcome), model, resamples=0, seed=seed)
    _, trial, _, _ = _candidate(model, fitted, [], "<candidate fit on the older 70 %>")
    k = sum(1 for d in test if d.handed)
    current = (
        [cand.margin(d, model) for d in train],
        [cand.margin(d, model) for d in test],
    )
    learned_margin = (
        [cand.margin(d, trial, model) for d in train],
        [cand.margin(d, trial, model) for d in test],
    )
    logits = fitted.weights.logit(fitted.design, fitted.design.rows(test))
    probabilities = [ev._sigmoid(x) for x in logits]
    models = [
        {"role": "current", "label": f"current {model.ref}"}
        | ev.judge("current", (current[0], y(train)), (current[1], y(test)), k, seed),
        {"role": "candidate", "label": "candidate (rounded points, fit on the older 70 %)"}
        | ev.judge(
            "candidate", (learned_margin[0], y(train)), (learned_margin[1], y(test)), k, seed
        ),
        {"role": "regression", "label": "the regression itself (unrounded)"}
        | ev.judge("regression", ([], []), (logits, y(test)), k, seed, probabilities),
    ]
    return {
        "train": len(train),
        "test": len(test),
        "train_positive": sum(y(train)),
        "test_positive": sum(y(test)),
        "penalty_c": fitted.c,
        "models": models,
    }, trial


def run_learn(
    model_path: str | None,
    events: Sequence[str],
    outcome: str,
    out: Path,
    candidate_out: Path,
    json_out: Path | None = None,
    whatif_out: Path | None = None,
    *,
    history: History | None = None,
    topics: Sequence[str] = (),
    settings: Settings | None = None,
    resamples: int = 200,
    seed: int = 7,
    jobs: int = 1,
    skip_bad_lines: bool = False,
) -> Result:
    """The whole command; `history` given (tests) replaces `events` and `topics`."""
    from stream.reports.commands import _json, _write, run_whatif

    if outcome not in OUTCOMES:
        raise ReportError(f"--outcome {outcome!r}: want one of {', '.join(OUTCOMES)}")
    if resamples < 0:
        raise ReportError(f"--bootstrap {resamples}: want 0 or more resamples")
    model = _model(model_path)
    _sklearn()
    started = time.monotonic()
    history = history if history is not None else load_history(events, topics, settings)
    history, skipped = clean(history, skip_bad_lines)
    sample = collect(history, model)  # the reports' identity secret: lead ids as in whatif
    positive, negative = enough(sample, outcome)
    evaluation, _ = _evaluate(model, sample, outcome, seed)
    final = learn(
        sample.decisions,
        lambda d: sample.label(d, outcome),
        model,
        resamples=resamples,
        seed=seed,
    )
    by = {m["role"]: m for m in evaluation["models"]}
    version = cand.next_version(model.version)
    comment = [
        f"{model.id}@{version}: learned by `leadstream learn --outcome {outcome}` on "
        f"{datetime.now(UTC):%Y-%m-%d} from {model.ref}",
        f"history: {', '.join(events) or ''}{', '.join(topics)} ({sample.events} events, "
        f"{sample.leads} leads); {len(sample.decisions)} judged at their decision, "
        f"{positive} with '{outcome}', {negative} without",
        f"L2 logistic regression held near {model.ref} (C = {final.c:g} by 5-fold "
        "cross-validation), corrections per type and fit entry over today's points:",
        _scale_line("engagement", final.weights.scale_e, "event type"),
        _scale_line("fit", final.weights.scale_f, "fit entry"),
        f"held-out AUC (trained on the older 70 %, judged on the newer 30 %): current "
        f"{by['current']['auc']:.3f}, candidate {by['candidate']['auc']:.3f}",
        "only points changed (type caps scaled alike); rounded to whole points, steps of 5 "
        "from 20; a type keeps its group's sign",
        f"report: {out}; next: leadstream whatif, then a week in shadow "
        "(LEADSTREAM_SHADOW_MODEL), then promote",
    ]
    text, built, points, fit = _candidate(model, final, comment, str(candidate_out))
    _write(candidate_out, text, "candidate model")
    type_leads: dict[str, int] = {}
    fit_leads: dict[str, int] = {}
    for d in sample.decisions:
        for name in d.units:
            type_leads[name] = type_leads.get(name, 0) + 1
        for key in d.attributes:
            fit_leads[key] = fit_leads.get(key, 0) + 1
    whatif = None
    if whatif_out is not None:
        result = run_whatif(
            model_path, str(candidate_out), (), whatif_out, history=history, jobs=jobs
        )
        whatif = result.summary["metrics"]
    summary: dict[str, Any] = {
        "kind": "learn",
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "outcome": outcome,
        "current": model.ref,
        "history": {
            "lines": len(history.lines),
            "events": sample.events,
            "bad_lines": len(skipped),
            "skipped": [{"where": w, "error": e} for w, e in skipped[:20]],
        },
        "sample": {
            "leads": sample.leads,
            "judged": len(sample.decisions),
            "handed": sum(1 for d in sample.decisions if d.handed),
            "positive": positive,
            "negative": negative,
            "fast_lane": sample.fast_lane,
            "never_eligible": sample.never_eligible,
            "minimum_each": MIN_EACH,
        },
        "learned": {
            "penalty_c": final.c,
            "scale_engagement": final.weights.scale_e,
            "scale_fit": final.weights.scale_f,
            "resamples": final.resamples,
        },
        "weights": {
            "types": _weight_rows(
                {n: r.points for n, r in model.types.items()}, final, points, type_leads
            ),
            "fit": _weight_rows(current_fit_points(model), final, fit, fit_leads, "fit:"),
        },
        "evaluation": evaluation,
        "candidate": {"model": built.ref, "path": str(candidate_out), "comment": comment},
        "whatif": whatif,
        "whatif_report": str(whatif_out) if whatif_out is not None else None,
    }
    _write(out, learn_page(summary), "report")
    _write(json_out, _json(summary), "JSON summary")
    return Result(summary, time.monotonic() - started)
