"""Account rollup and MQA (scoring-model.md section 8): pure and incremental per contact."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import orjson

from stream.scoring.fit import company_fit
from stream.scoring.model import Model
from stream.scoring.stages import Scores
from stream.scoring.state import LeadState


@dataclass
class AccountState:
    """Latest engagement of each contact of an account, and the latest account fit seen."""

    account_id: str
    contacts: dict[str, float] = field(default_factory=dict)
    fit: float | None = None
    mqa: bool = False

    def encode(self) -> bytes:
        """Compact bytes; `AccountState.decode(a.encode()) == a`."""
        return orjson.dumps([1, self.account_id, self.contacts, self.fit, self.mqa])

    @classmethod
    def decode(cls, data: bytes) -> AccountState:
        """Inverse of `encode`."""
        _, account_id, contacts, fit, mqa = orjson.loads(data)
        return cls(account_id, contacts, fit, mqa)


@dataclass(frozen=True, slots=True)
class AccountUpdate:
    """Result of one contact update: the account, its engagement, MQA now, MQA newly reached."""

    account: AccountState
    engagement: float
    mqa: bool
    became_mqa: bool


def engaged_count(account: AccountState, model: Model) -> int:
    """Contacts with engagement >= the engaged minimum (10)."""
    minimum = float(model.section("account", "engaged_min"))
    return sum(1 for v in account.contacts.values() if v >= minimum)


def account_engagement(account: AccountState, model: Model) -> float:
    """Sum of the 3 highest contact engagements (negatives included; fewer contacts: those
    present) + 5 x min(4, contacts with engagement >= 10)."""
    top = int(model.section("account", "top_contacts"))
    bonus = float(model.section("account", "bonus_per_engaged"))
    most = int(model.section("account", "bonus_max_contacts"))
    best = heapq.nlargest(top, account.contacts.values())
    return sum(best) + bonus * min(most, engaged_count(account, model))


def is_mqa(account: AccountState, model: Model) -> bool:
    """Account fit >= 30 and account engagement >= 90 and >= 2 engaged contacts."""
    mqa = model.section("account", "mqa")
    if account.fit is None or account.fit < mqa["min_fit"]:
        return False
    return bool(
        account_engagement(account, model) >= mqa["min_engagement"]
        and engaged_count(account, model) >= mqa["min_engaged_contacts"]
    )


def update_account(
    account: AccountState,
    lead_id: str,
    engagement: float,
    fit_company: float | None,
    model: Model,
) -> AccountUpdate:
    """Record a contact's latest engagement (and company fit when known); mutates `account`."""
    account.contacts[lead_id] = engagement
    if fit_company is not None:
        account.fit = fit_company
    was = account.mqa
    account.mqa = is_mqa(account, model)
    return AccountUpdate(
        account=account,
        engagement=account_engagement(account, model),
        mqa=account.mqa,
        became_mqa=account.mqa and not was,
    )


@dataclass(frozen=True, slots=True)
class ContactUpdate:
    """What one lead contributes to its account: its engagement now and its company fit."""

    account_id: str
    lead_id: str
    engagement: float
    fit_company: float | None
    at_us: int

    def to_dict(self) -> dict[str, object]:
        return {
            "account_id": self.account_id,
            "lead_id": self.lead_id,
            "engagement": self.engagement,
            "fit_company": self.fit_company,
            "at_us": self.at_us,
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> ContactUpdate:
        fit = d.get("fit_company")
        return cls(
            str(d["account_id"]),
            str(d["lead_id"]),
            float(d["engagement"]),  # type: ignore[arg-type]
            None if fit is None else float(fit),  # type: ignore[arg-type]
            int(d["at_us"]),  # type: ignore[call-overload]
        )


def contact_update(state: LeadState, model: Model) -> ContactUpdate | None:
    """The lead's contribution to its account at its clock; None without an account.

    The account fit comes from the company attributes of the lead's profile (employees,
    industry, country, tech); None while the profile has none of them, so a contact who never
    told us about the company does not overwrite what a colleague told us.
    """
    if not state.account_id or state.clock is None:
        return None
    scores = Scores(state, model, state.clock)
    kept = state.company
    if kept is None or kept[0] is not state.profile:
        known = any(name in state.profile for name in model.company_attributes)
        kept = state.company = (state.profile, company_fit(state.profile, model) if known else None)
    return ContactUpdate(state.account_id, state.lead_id, scores.engagement, kept[1], state.clock)
