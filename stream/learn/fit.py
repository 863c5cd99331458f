"""The model's own parameters fitted to sales outcomes: a logistic regression held near today's.

The regression explains the outcome's log-odds by the current model's engagement and fit at
the decision (each with a free scale, `s_e` and `s_f`: log-odds per point), plus a correction
per event type (per unit of the type, `δ_t`) and per fit table entry (`ε_a`):

    logit p = b + s_e·engagement + s_f·fit + Σ δ_t·units_t + Σ ε_a·[profile has a]

Only the corrections are penalised (L2, strength chosen by 5-fold cross-validation), so with
little evidence they stay near 0 and the candidate stays today's model: regularising toward the
current model, not toward "no points at all". A type's learned points are then
`points_t + δ_t / s_e` (a unit of the type is worth its points in engagement, and one point of
engagement is worth `s_e` in log-odds); a fit entry's `points_a + ε_a / s_f`.

scikit-learn penalises every coefficient alike, so the two scales are left free by giving their
columns a large spread (`FREE_SPREAD`): the penalty on a coefficient shrinks with the square of
its column's scale, and at this spread it is below a millionth of the data's term.
Intervals come from refitting on bootstrap resamples of the leads (seeded).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from stream.learn.features import Decision, attribute_keys
from stream.reports.errors import ReportError
from stream.scoring.model import Model

FREE_SPREAD = 100.0
"""Standard deviation given to the free columns (engagement, fit)."""
CS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
"""Inverse penalty strengths tried by cross-validation."""
MIN_SCALE = 1e-3
"""Log-odds per point below which engagement (or fit) is taken not to predict the outcome:
its points are then kept, as no conversion from log-odds to points exists."""


def _sklearn() -> Any:
    try:
        import sklearn.linear_model
    except ImportError:
        raise ReportError(
            "leadstream learn needs scikit-learn: pip install 'leadstream[learn]'"
        ) from None
    return sklearn.linear_model


@dataclass
class Design:
    """The regression's inputs: rows of decisions, the columns' names and spreads."""

    types: list[str]
    attributes: list[str]
    scale_e: float
    scale_f: float

    @classmethod
    def of(cls, decisions: Sequence[Decision], model: Model) -> Design:
        types = [t for t in model.types if any(t in d.units for d in decisions)]
        present = {a for d in decisions for a in d.attributes}
        attributes = [a for a in attribute_keys(model) if a in present]
        return cls(
            types,
            attributes,
            _spread([d.engagement for d in decisions]),
            _spread([d.fit for d in decisions]),
        )

    def rows(self, decisions: Sequence[Decision]) -> list[list[float]]:
        index = {a: i for i, a in enumerate(self.attributes)}
        out = []
        for d in decisions:
            row = [
                d.engagement * FREE_SPREAD / self.scale_e,
                d.fit * FREE_SPREAD / self.scale_f,
            ]
            row += [d.units.get(t, 0.0) for t in self.types]
            hot = [0.0] * len(self.attributes)
            for a in d.attributes:
                if a in index:
                    hot[index[a]] = 1.0
            out.append(row + hot)
        return out


def _spread(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 1.0
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return sd if sd > 1e-9 else 1.0


@dataclass
class Weights:
    """One fit, in the model's own units."""

    intercept: float
    scale_e: float
    """Log-odds per point of engagement."""
    scale_f: float
    points: dict[str, float]
    """Event type -> learned points (before rounding and sign rules)."""
    fit_points: dict[str, float]
    """Fit table entry -> learned points."""
    coef: list[float] = field(default_factory=list)

    def logit(self, design: Design, rows: Sequence[Sequence[float]]) -> list[float]:
        return [self.intercept + sum(c * x for c, x in zip(self.coef, row, strict=True))
                for row in rows]  # fmt: skip


def _weights(clf: Any, design: Design, model: Model) -> Weights:
    coef = [float(c) for c in clf.coef_[0]]
    s_e = coef[0] * FREE_SPREAD / design.scale_e
    s_f = coef[1] * FREE_SPREAD / design.scale_f
    deltas = coef[2 : 2 + len(design.types)]
    eps = coef[2 + len(design.types) :]
    current_fit = current_fit_points(model)
    points = {}
    for name, delta in zip(design.types, deltas, strict=True):
        now = model.types[name].points
        points[name] = now + delta / s_e if s_e > MIN_SCALE else now
    fit_points = {}
    for key, e in zip(design.attributes, eps, strict=True):
        now = current_fit[key]
        fit_points[key] = now + e / s_f if s_f > MIN_SCALE else now
    return Weights(float(clf.intercept_[0]), s_e, s_f, points, fit_points, coef)


def current_fit_points(model: Model) -> dict[str, float]:
    """Fit table entry -> its points in the model (the names of `attribute_keys`)."""
    out: dict[str, float] = {}
    keys = iter(attribute_keys(model))
    for attr in model.fit_attributes:
        if attr.ranges:
            for _low, _high, points in attr.ranges:
                out[next(keys)] = points
        else:
            for points in attr.points.values():
                out[next(keys)] = points
    return out


def _classifier(c: float) -> Any:
    # Newton steps: the free columns and the per-type columns are nearly collinear (engagement
    # is their sum with today's points), which first-order solvers crawl through.
    return _sklearn().LogisticRegression(C=c, solver="newton-cholesky", max_iter=200)


def choose_c(rows: list[list[float]], labels: list[int], seed: int) -> float:
    """The penalty by 5-fold cross-validation (mean log loss of the held-out folds), over `CS`;
    folds dealt at random, stratified by outcome."""
    import numpy as np

    x, y = np.asarray(rows), np.asarray(labels)
    positives = [i for i, y in enumerate(labels) if y]
    negatives = [i for i, y in enumerate(labels) if not y]
    folds = min(5, len(positives), len(negatives))
    if folds < 2:
        return 1.0
    rng = random.Random(f"learn-cv/{seed}")
    rng.shuffle(positives)
    rng.shuffle(negatives)
    fold_of = {i: n % folds for n, i in enumerate(positives)}
    fold_of |= {i: n % folds for n, i in enumerate(negatives)}
    best, best_loss = 1.0, math.inf
    fold = np.asarray([fold_of[i] for i in range(len(labels))])
    for c in CS:
        loss = 0.0
        for k in range(folds):
            clf = _classifier(c)
            clf.fit(x[fold != k], y[fold != k])
            probs = np.clip(clf.predict_proba(x[fold == k])[:, 1], 1e-12, 1 - 1e-12)
            held = y[fold == k]
            loss -= float(np.sum(np.where(held == 1, np.log(probs), np.log(1 - probs))))
        if loss < best_loss:
            best, best_loss = c, loss
    return best


def fit_once(design: Design, rows: Any, labels: Any, model: Model, c: float) -> Weights:
    clf = _classifier(c)
    clf.fit(rows, labels)
    return _weights(clf, design, model)


@dataclass
class Learned:
    """The fit on a set of decisions, with bootstrap intervals per weight."""

    design: Design
    c: float
    weights: Weights
    intervals: dict[str, tuple[float, float]]
    """`type` or `fit:entry` -> 95 % interval of its learned points."""
    resamples: int


def learn(
    decisions: Sequence[Decision],
    outcome_of: Any,
    model: Model,
    *,
    resamples: int = 200,
    seed: int = 7,
) -> Learned:
    """Fit the weights to `decisions` (labels by `outcome_of(decision)`), with intervals."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    design = Design.of(decisions, model)
    rows = design.rows(decisions)
    labels = [1 if outcome_of(d) else 0 for d in decisions]
    samples: dict[str, list[float]] = {}
    done = 0
    # one BLAS thread: these problems are small, and threads only fight on a busy machine
    with threadpool_limits(1):
        c = choose_c(rows, labels, seed)
        x, y = np.asarray(rows), np.asarray(labels)
        weights = fit_once(design, x, y, model, c)
        rng = random.Random(f"learn/{seed}")
        n = len(rows)
        for _ in range(resamples):
            pick = [rng.randrange(n) for _ in range(n)]
            ys = y[pick]
            if 0 < int(ys.sum()) < n:
                w = fit_once(design, x[pick], ys, model, c)
                done += 1
                for name, value in w.points.items():
                    samples.setdefault(name, []).append(value)
                for key, value in w.fit_points.items():
                    samples.setdefault(f"fit:{key}", []).append(value)
    intervals = {name: _percentiles(values) for name, values in samples.items()}
    return Learned(design, c, weights, intervals, done)


def _percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        i = q * (len(ordered) - 1)
        lo, hi = math.floor(i), math.ceil(i)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (i - lo)

    return (at(0.025), at(0.975))
