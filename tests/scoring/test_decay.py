"""Half-life decay: 0.5^((T - t_i)/half_life), and the kept decayed sums."""

from __future__ import annotations

import pytest

from stream.scoring import Model, snapshot
from stream.scoring.decay import accumulate, factor, value_at
from stream.scoring.events import US_PER_DAY

from .helpers import at, ev, fold, t_of

D = US_PER_DAY


@pytest.mark.parametrize(
    ("days", "half_life", "expected"),
    [
        (0, 7, 1.0),
        (7, 7, 0.5),  # one half-life
        (14, 7, 0.25),  # two
        (3.5, 7, 0.7071067811865476),  # 2^-0.5
        (30, 30, 0.5),
        (45, 45, 0.5),
        (90, 90, 0.5),
        (1000, None, 1.0),  # no half-life: no decay
    ],
)
def test_factor(days: float, half_life: float | None, expected: float) -> None:
    assert factor(round(days * D), half_life) == pytest.approx(expected, abs=1e-12)


def test_accumulate_in_order_and_late() -> None:
    # 8 at day 0, 8 at day 14 (hl 14): at day 14 = 8·0.5 + 8 = 12; at day 28 = 12·0.5 = 6
    acc = accumulate(None, 8, 0, 14)
    acc = accumulate(acc, 8, 14 * D, 14)
    assert value_at(acc, 14 * D, 14) == pytest.approx(12)
    assert value_at(acc, 28 * D, 14) == pytest.approx(6)
    # a late entry (8 at day 7) after the day-14 one: + 8·0.5^(7/14) = 5.657 at day 14
    acc = accumulate(acc, 8, 7 * D, 14)
    assert acc[1] == 14 * D
    assert value_at(acc, 14 * D, 14) == pytest.approx(12 + 8 * 2**-0.5)


@pytest.mark.parametrize(
    ("type_", "points", "half_life", "days_later"),
    [
        ("web.pricing_view", 8, 14, 14),  # 8 → 4 after 14 d
        ("webinar.attended", 10, 45, 45),  # 10 → 5 after 45 d
        ("trial.signup", 20, 30, 15),  # 20 → 20·2^-0.5 = 14.142 after 15 d
        ("cart.abandoned", 10, 7, 21),  # 10 → 1.25 after 21 d
    ],
)
def test_engine_decay(
    model: Model, type_: str, points: float, half_life: float, days_later: float
) -> None:
    # a product view first, so that a pricing view is not early (needs 3 priors: add awareness)
    run = fold(
        model,
        [
            ev("web.page_view", at(0, 9)),
            ev("email.click", at(0, 9), properties={"message_id": "m1"}),
            ev("email.open", at(0, 9), properties={"message_id": "m1"}),
            ev("webinar.registered", at(0, 9), properties={"webinar_id": "w0"}),
            ev(type_, at(0, 10), properties={"webinar_id": "w1"}),
        ],
    )
    value = snapshot(run.state, model, t_of(days_later, 10))["types"][type_]
    assert value == pytest.approx(points * 0.5 ** (days_later / half_life), abs=1e-9)


def test_spam_complaint_never_decays(model: Model) -> None:
    run = fold(model, [ev("email.spam_complaint", at(0))])
    assert snapshot(run.state, model, t_of(1000))["types"]["email.spam_complaint"] == -50
