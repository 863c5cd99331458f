"""The pieces of `learn` checked against hand-worked cases."""

from __future__ import annotations

import pytest

from stream.learn.candidate import margin, next_version, person_round
from stream.learn.evaluate import at_volume, auc, split
from stream.learn.features import Decision, collect
from stream.reports.history import History
from stream.scoring.model import load_model


@pytest.mark.parametrize(
    ("value", "written"), [(0.4, 0.0), (7.6, 8.0), (-1.3, -1.0), (18.4, 18.0), (22.4, 20.0),
                           (27.6, 30.0), (-48.0, -50.0)],
)  # fmt: skip
def test_points_are_rounded_as_a_person_writes_them(value: float, written: float) -> None:
    assert person_round(value) == written


def test_a_learned_model_is_the_next_minor_version() -> None:
    assert next_version("1.0.0") == "1.1.0"
    assert next_version("2.7.3") == "2.8.0"
    assert next_version("v1") == "v1-learned"


def test_auc_counts_ties_half_and_needs_both_outcomes() -> None:
    # pairs (pos, neg): (3,1) (3,2) win, (2,1) wins, (2,2) tie: (1+1+1+0.5)/4
    assert auc([3, 2, 1, 2], [1, 1, 0, 0]) == pytest.approx(3.5 / 4)
    assert auc([1, 2], [1, 1]) is None


def test_precision_and_recall_of_the_top_k() -> None:
    found = at_volume([0.9, 0.8, 0.1, 0.7], [1, 0, 1, 1], 2)
    assert (found["hits"], found["precision"], found["recall"]) == (1, 0.5, pytest.approx(1 / 3))


def test_the_split_keeps_the_newest_for_the_test() -> None:
    decisions = [
        Decision(f"l{i}", float(10 - i), False, 0.0, 0.0, "A", {}, {}, ()) for i in range(10)
    ]
    train, test = split(decisions)
    assert len(train) == 7 and len(test) == 3
    assert max(d.t for d in train) < min(d.t for d in test)


def test_a_handed_over_lead_is_judged_where_it_crossed_its_threshold(
    planted_lines: list[str],
) -> None:
    model = load_model(None)
    sample = collect(History.from_lines(planted_lines[:3000]), model)
    handed = [d for d in sample.decisions if d.handed]
    others = [d for d in sample.decisions if not d.handed]
    assert handed and others
    assert all(margin(d, model) >= 0 for d in handed)  # its threshold at its grade
    # recomputed from the features with today's points, the engine's own numbers come back
    for d in sample.decisions:
        assert margin(d, model, model) == pytest.approx(margin(d, model), abs=1e-6)
