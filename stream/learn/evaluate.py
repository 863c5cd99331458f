"""Time-split evaluation: learn on the older 70 % of the decisions, judge on the newer 30 %.

Each model ranks the held-out leads by its own decision function: how far the lead's
engagement is over its grade's MQL threshold (`candidate.margin`), the current model's from
the engine's numbers, the candidate's recomputed with its points from the same features. The
fitted regression's probability is shown too (it is what the rounded file approximates).
Measured per model:
- AUC (the chance that a lead with the outcome ranks above one without), with a bootstrap
  95 % interval over the held-out leads;
- precision and recall at the current MQL volume: each model's top k leads, k = how many of
  the held-out leads the current model handed over by score, so volume is equal and only the
  choice differs;
- calibration: the share with the outcome per fifth of predicted probability. A rule model
  gives no probability, so its margin is mapped to one by a logistic fit on the training part
  (Platt scaling), for the current model and the candidate alike.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

from stream.learn.features import Decision

TRAIN_SHARE = 0.7


def split(decisions: Sequence[Decision]) -> tuple[list[Decision], list[Decision]]:
    """Older 70 % (by decision time) and newer 30 %."""
    ordered = sorted(decisions, key=lambda d: (d.t, d.lead_id))
    cut = round(len(ordered) * TRAIN_SHARE)
    return ordered[:cut], ordered[cut:]


def auc(scores: Sequence[float], labels: Sequence[int]) -> float | None:
    """Mann-Whitney AUC, ties counted half; None without both classes."""
    positives = sum(labels)
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = sum(r for r, y in zip(ranks, labels, strict=True) if y)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def auc_interval(
    scores: Sequence[float], labels: Sequence[int], seed: int, resamples: int = 200
) -> tuple[float, float] | None:
    rng = random.Random(f"auc/{seed}")
    n = len(scores)
    values = []
    for _ in range(resamples):
        pick = [rng.randrange(n) for _ in range(n)]
        value = auc([scores[i] for i in pick], [labels[i] for i in pick])
        if value is not None:
            values.append(value)
    if not values:
        return None
    values.sort()
    return values[int(0.025 * (len(values) - 1))], values[int(0.975 * (len(values) - 1))]


def at_volume(scores: Sequence[float], labels: Sequence[int], k: int) -> dict[str, Any]:
    """Precision and recall of the top k (ties broken by position, i.e. by decision time)."""
    top = sorted(range(len(scores)), key=lambda i: -scores[i])[:k]
    hits = sum(labels[i] for i in top)
    positives = sum(labels)
    return {
        "k": k,
        "hits": hits,
        "precision": hits / k if k else None,
        "recall": hits / positives if positives else None,
    }


def platt(scores: Sequence[float], labels: Sequence[int]) -> Callable[[float], float]:
    """score -> probability by a one-variable logistic fit (no penalty to speak of)."""
    from sklearn.linear_model import LogisticRegression

    if 0 < sum(labels) < len(labels):
        clf = LogisticRegression(C=1e6, max_iter=5000)
        clf.fit([[s] for s in scores], list(labels))
        a, b = float(clf.coef_[0][0]), float(clf.intercept_[0])
    else:
        a, b = 0.0, _logit(sum(labels) / max(1, len(labels)))
    return lambda s: _sigmoid(a * s + b)


def _logit(p: float) -> float:
    p = min(1 - 1e-6, max(1e-6, p))
    return math.log(p / (1 - p))


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def calibration(
    probs: Sequence[float], labels: Sequence[int], bins: int = 5
) -> list[dict[str, Any]]:
    """Mean predicted and observed rate per equal-count bin of predicted probability."""
    order = sorted(range(len(probs)), key=lambda i: probs[i])
    out = []
    for b in range(bins):
        part = order[b * len(order) // bins : (b + 1) * len(order) // bins]
        if part:
            out.append(
                {
                    "predicted": sum(probs[i] for i in part) / len(part),
                    "observed": sum(labels[i] for i in part) / len(part),
                    "leads": len(part),
                }
            )
    return out


def judge(
    name: str,
    train: tuple[Sequence[float], Sequence[int]],
    test: tuple[Sequence[float], Sequence[int]],
    k: int,
    seed: int,
    probabilities: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Every measure of one model on the held-out part (`train` scores for calibration)."""
    scores, labels = test
    if probabilities is None:
        to_p = platt(*train)
        probabilities = [to_p(s) for s in scores]
    return {
        "model": name,
        "auc": auc(scores, labels),
        "auc_interval": auc_interval(scores, labels, seed),
        "at_volume": at_volume(scores, labels, k),
        "calibration": calibration(probabilities, labels),
    }
