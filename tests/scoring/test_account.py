"""Account rollup and MQA (section 8), including the model's own example."""

from __future__ import annotations

import pytest

from stream.scoring import AccountState, Model, account_engagement, is_mqa, update_account


def account_of(model: Model, engagements: list[float], fit: float | None = 45) -> AccountState:
    account = AccountState("acme")
    for i, value in enumerate(engagements):
        update_account(account, f"c{i}", value, fit, model)
    return account


@pytest.mark.parametrize(
    ("engagements", "fit", "total", "mqa"),
    [
        ([25, 20, 12, 4], 45, 72, False),  # 25+20+12 = 57 + 5·3 = 72
        ([25, 20, 12, 4, 30], 45, 95, True),  # 30+25+20 = 75 + 5·4 = 95
        ([25, 20, 12, 4, 30], 29, 95, False),  # account fit < 30
        ([95], 45, 100, False),  # 95 + 5 = 100 but only 1 engaged contact
        ([50, 45, 10, 10, 10, 10], 30, 125, True),  # 50+45+10 + 5·min(4, 6) = 125
        ([-20, 5], 45, -15, False),  # negatives count as they are
        ([], 45, 0, False),
        ([60, 30], None, 100, False),  # account fit unknown
    ],
)
def test_rollup(
    model: Model, engagements: list[float], fit: float | None, total: float, mqa: bool
) -> None:
    account = account_of(model, engagements, fit)
    assert account_engagement(account, model) == total
    assert is_mqa(account, model) is mqa


def test_update_is_incremental_and_reports_mqa_change(model: Model) -> None:
    account = account_of(model, [25, 20, 12, 4])
    update = update_account(account, "c9", 30, None, model)
    assert (update.engagement, update.mqa, update.became_mqa) == (95, True, True)
    update = update_account(account, "c9", 31, None, model)  # same contact, latest value wins
    assert (update.engagement, update.became_mqa) == (96, False)
    assert AccountState.decode(account.encode()) == account
