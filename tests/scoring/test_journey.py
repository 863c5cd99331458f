"""Journey rules: early pricing (both branches), research streak, mofu guard (with recycle)."""

from __future__ import annotations

import pytest

from stream.scoring import Model, new_state
from stream.scoring.events import US_PER_DAY
from stream.scoring.journey import mofu_guard

from .helpers import at, ev, fold

D = US_PER_DAY


def awareness(n: int, day: float = 0) -> list:  # type: ignore[type-arg]
    """n scored awareness entries (distinct e-book assets are 2 per 30 d: use clicks/views)."""
    return [ev("web.page_view", at(day, 1, i)) for i in range(n)]


def pricing(run_ledger: list) -> list[tuple[float, tuple[str, ...]]]:  # type: ignore[type-arg]
    return [(e.base_points, e.tags) for e in run_ledger if e.type == "web.pricing_view"]


EARLY = (2.0, ("early_pricing",))  # 8 × 0.25
FULL = (8.0, ())


@pytest.mark.parametrize(
    ("before", "expected"),
    [
        ([], EARLY),  # (a): 0 earlier scored entries
        (awareness(3), EARLY),  # (a) false, (b): no consideration entry in 30 d → early
        ([*awareness(2), ev("web.product_page_view", at(0, 2))], FULL),  # 3 priors + product
        (
            [
                ev("webinar.attended", at(0, 2), properties={"webinar_id": "w"}),
                ev("web.product_page_view", at(0, 2)),
            ],
            EARLY,
        ),  # (a): only 2 priors
        (
            [
                *awareness(5),
                ev("email.unsubscribe", at(0, 2)),
                ev("content.case_study_download", at(0, 2), properties={"asset_id": "c"}),
            ],
            FULL,
        ),
    ],
)
def test_early_pricing(model: Model, before: list, expected: tuple) -> None:  # type: ignore[type-arg]
    run = fold(model, [*before, ev("web.pricing_view", at(0, 3))])
    assert pricing(run.ledger) == [expected]


def test_negative_entries_do_not_count_as_priors(model: Model) -> None:
    # 3 negatives + a product view: 1 non-negative prior → (a) early
    before = [
        ev("email.unsubscribe", at(0)),
        ev("web.careers_view", at(0)),
        ev("email.spam_complaint", at(0)),
        ev("web.product_page_view", at(0, 1)),
    ]
    run = fold(model, [*before, ev("web.pricing_view", at(0, 3))])
    assert pricing(run.ledger) == [EARLY]


def test_earlier_pricing_views_count_as_priors(model: Model) -> None:
    # pricing views day 0, 1, 2 are early by (a) (0, 1, 2 priors); day 3: (a) false (3 priors),
    # (b) true (no other consideration entry) → still early; after a product view → full
    views = [ev("web.pricing_view", at(d, 9)) for d in range(4)]
    run = fold(
        model, [*views, ev("web.product_page_view", at(4, 8)), ev("web.pricing_view", at(4, 9))]
    )
    assert pricing(run.ledger) == [EARLY] * 4 + [FULL]


@pytest.mark.parametrize(
    ("pricing_day", "expected"),
    [(29.99, FULL), (30.0, EARLY)],  # the product view at day 0 leaves (t-30, t] at day 30
)
def test_early_pricing_window_edge(model: Model, pricing_day: float, expected: tuple) -> None:  # type: ignore[type-arg]
    before = [*awareness(3), ev("web.product_page_view", at(0, 1, 30))]
    run = fold(model, [*before, ev("web.pricing_view", at(pricing_day, 1, 30))])
    assert pricing(run.ledger) == [expected]


def test_streak_counts_for_early_pricing_window(model: Model) -> None:
    # views day 0 and day 1 → a streak at day 1, processed right after the view and before the
    # next event; the pricing view then has 3+ priors and consideration entries → full 8
    events = [
        *awareness(3),
        ev("web.product_page_view", at(0, 9)),
        ev("web.product_page_view", at(1, 9)),
        ev("web.pricing_view", at(1, 10)),
    ]
    run = fold(model, events)
    assert [e.type for e in run.ledger][-2:] == ["journey.research_streak", "web.pricing_view"]
    assert pricing(run.ledger) == [FULL]


def streaks(run_ledger: list) -> list[tuple[str, str | None]]:  # type: ignore[type-arg]
    return [(e.event_id, e.suppressed) for e in run_ledger if e.type == "journey.research_streak"]


@pytest.mark.parametrize(
    ("view_times", "expected_count"),
    [
        ([(0, 10), (0, 11), (0, 12)], 0),  # one date only
        ([(0, 10), (1, 10)], 1),  # two dates within (t-7, t]
        ([(0, 10), (7, 10)], 0),  # exactly 7 d apart: day 0 is outside (t-7, t]
        ([(0, 10), (6, 23)], 1),
        ([(0, 23.99), (1, 0.01)], 1),  # minutes apart across midnight: two dates
    ],
)
def test_research_streak(model: Model, view_times: list, expected_count: int) -> None:  # type: ignore[type-arg]
    run = fold(model, [ev("web.product_page_view", at(d, h)) for d, h in view_times])
    assert len(streaks(run.ledger)) == expected_count


def test_streak_own_cap_and_suppressed_views(model: Model) -> None:
    events = [
        ev("web.product_page_view", at(0, 10), eid="v0"),
        ev("web.product_page_view", at(1, 10), eid="v1"),  # streak scored
        ev("web.product_page_view", at(2, 10), eid="v2"),  # streak due, capped (1 per 14 d)
        ev("web.product_page_view", at(2, 11), eid="v3"),  # due again, capped
        ev("web.product_page_view", at(2, 12), eid="v4"),  # due again, capped
        ev("web.product_page_view", at(2, 13), eid="v5"),  # view capped (3/day): no streak
        ev("web.product_page_view", at(15, 10), eid="v6"),  # day 15: 1 date in window → none
        ev("web.product_page_view", at(15, 11), eid="v7"),  # same date → none
        ev("web.product_page_view", at(16, 9), eid="v8"),  # 2 dates; last streak 15 d ago
    ]
    run = fold(model, events)
    suffix = "/journey.research_streak"
    assert streaks(run.ledger) == [
        ("v1" + suffix, None),
        ("v2" + suffix, "freq_cap"),
        ("v3" + suffix, "freq_cap"),
        ("v4" + suffix, "freq_cap"),
        ("v8" + suffix, None),
    ]
    # the derived entry directly follows its view, with the view's time
    index = [e.event_id for e in run.ledger].index("v1" + suffix)
    assert run.ledger[index - 1].event_id == "v1"
    assert run.ledger[index].at == run.ledger[index - 1].at


def test_streak_exactly_14_days_later_passes_its_cap(model: Model) -> None:
    events = [
        ev("web.product_page_view", at(0, 10)),
        ev("web.product_page_view", at(1, 10)),
        ev("web.product_page_view", at(14, 10)),
        ev("web.product_page_view", at(15, 10)),
    ]
    run = fold(model, events)
    assert [s for _, s in streaks(run.ledger)] == [None, None]  # day 1 and day 15 (exactly 14 d)


@pytest.mark.parametrize(
    ("last_day", "recycled_day", "expected"),
    [
        (None, None, False),  # never a mid-funnel touch
        (0, None, True),
        (-29.999, None, True),
        (-30, None, False),  # exactly 30 d earlier: outside (T-30, T]
        (-5, -10, True),  # touch after the recycle
        (-5, -5, False),  # at the recycle instant: not after it
        (-5, -2, False),  # recycle after the touch
    ],
)
def test_mofu_guard(
    model: Model, last_day: float | None, recycled_day: float | None, expected: bool
) -> None:
    state = new_state("L1")
    now = 100 * D
    state.mofu_last = None if last_day is None else now + round(last_day * D)
    state.recycled_at = None if recycled_day is None else now + round(recycled_day * D)
    assert mofu_guard(state, now, model) is expected


def test_mofu_ignores_early_pricing_and_awareness(model: Model) -> None:
    run = fold(model, [*awareness(5), ev("web.pricing_view", at(0, 3))])
    assert run.state.mofu_last is None
    run.feed(ev("web.product_page_view", at(0, 4)))
    assert run.state.mofu_last == run.state.clock
