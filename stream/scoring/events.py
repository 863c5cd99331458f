"""The canonical Event, the event types the engine treats specially, and event-time helpers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stream.errors import LeadstreamError
from stream.times import EPOCH as EPOCH
from stream.times import US_PER_DAY as US_PER_DAY
from stream.times import US_PER_SECOND as US_PER_SECOND
from stream.times import format_us as format_us
from stream.times import parse_rfc3339, to_us

# Engine time is integer microseconds since the epoch ("us"): window edges ("exactly W days
# earlier is outside") are then exact integer comparisons. `t` (float days) is derived from it.

IDENTIFY = "identify"
PROFILE_UPDATE = "profile.update"
SALES_ACCEPTED = "sales.accepted"
SALES_REJECTED = "sales.rejected"
SALES_NO_DECISION = "sales.no_decision"
OPPORTUNITY_CREATED = "opportunity.created"
OPPORTUNITY_WON = "opportunity.won"
OPPORTUNITY_LOST = "opportunity.lost"
MANUAL_OVERRIDE = "manual.override"

CHANNELS = frozenset({"web", "email", "social", "crm", "product"})
STAGES = (
    "anonymous",
    "lead",
    "mql",
    "sales_ready",
    "sql",
    "opportunity",
    "customer",
    "nurture",
    "disqualified",
)

# Trait name -> accepted Python types (bool is checked apart: it is an int subclass).
_TRAIT_TYPES: dict[str, tuple[type, ...]] = {
    "seniority": (str,),
    "buying_role": (str,),
    "employees": (int,),
    "industry": (str,),
    "country": (str,),
    "email_type": (str,),
    "tech_fit": (bool,),
    "budget_usd": (int, float),
    "budget_confirmed": (bool,),
    "need": (bool, str),
    "timeline_months": (int, float),
}
_OPTIONAL_STR = ("received_at", "anonymous_id", "user_id", "email", "account_id", "source")
_DICTS = ("properties", "traits", "context")


class EventError(LeadstreamError):
    """An input record is not a valid canonical event; the message names the field."""

    reason = "schema_violation"


def parse_time(value: object, name: str = "occurred_at") -> int:
    """RFC 3339 timestamp (offset required) -> integer microseconds since the epoch."""
    if not isinstance(value, str) or not value:
        raise EventError(f"{name}={value!r}: want an RFC 3339 timestamp string")
    try:
        return to_us(parse_rfc3339(value))
    except ValueError as exc:
        raise EventError(f"{name}: {exc}") from None


def us_to_t(us: int) -> float:
    """Microseconds -> model time t (days, float)."""
    return us / US_PER_DAY


def t_to_us(t: float) -> int:
    """Model time t (days) -> microseconds; exact for any t produced by us_to_t."""
    return round(t * US_PER_DAY)


def format_t(t: float) -> str:
    """Model time t (days) -> RFC 3339 UTC string."""
    return format_us(t_to_us(t))


def _check_traits(traits: Mapping[str, Any]) -> None:
    for key, want in _TRAIT_TYPES.items():
        value = traits.get(key)
        if value is None:
            continue
        if isinstance(value, bool) and bool not in want:
            raise EventError(f"traits.{key}={value!r}: want {'/'.join(t.__name__ for t in want)}")
        if not isinstance(value, want):
            raise EventError(f"traits.{key}={value!r}: want {'/'.join(t.__name__ for t in want)}")


@dataclass(frozen=True, slots=True)
class Event:
    """One canonical event (schemas/canonical-event.schema.json).

    `t_us` is derived from `occurred_at` (integer microseconds since the epoch).
    """

    event_id: str
    type: str
    occurred_at: str
    channel: str | None = None
    received_at: str | None = None
    lead_id: str | None = None
    anonymous_id: str | None = None
    user_id: str | None = None
    email: str | None = None
    account_id: str | None = None
    source: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)
    traits: Mapping[str, Any] = field(default_factory=dict)
    context: Mapping[str, Any] = field(default_factory=dict)
    t_us: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "t_us", parse_time(self.occurred_at))

    @property
    def t(self) -> float:
        """Event time in model time (days since the epoch)."""
        return self.t_us / US_PER_DAY

    @property
    def key(self) -> str | None:
        """The lead key of a replay line: lead_id, else user_id, email, anonymous_id."""
        return self.lead_id or self.user_id or self.email or self.anonymous_id

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Event:
        """Check and build an Event; raises EventError naming the bad field."""
        if not isinstance(d, Mapping):
            raise EventError(f"event: want a JSON object, got {type(d).__name__}")
        for name in ("event_id", "type"):
            value = d.get(name)
            if not isinstance(value, str) or not value:
                raise EventError(f"{name}={value!r}: required non-empty string")
        channel = d.get("channel")
        if channel is not None and channel not in CHANNELS:
            raise EventError(f"channel={channel!r}: want one of {', '.join(sorted(CHANNELS))}")
        for name in ("lead_id", *_OPTIONAL_STR):
            value = d.get(name)
            if value is not None and not isinstance(value, str):
                raise EventError(f"{name}={value!r}: want a string")
        if d.get("received_at") is not None:
            parse_time(d["received_at"], "received_at")
        for name in _DICTS:
            value = d.get(name)
            if value is not None and not isinstance(value, Mapping):
                raise EventError(f"{name}: want an object, got {type(value).__name__}")
        traits = d.get("traits") or {}
        _check_traits(traits)
        props = d.get("properties") or {}
        if d["type"] == MANUAL_OVERRIDE and props.get("stage") not in STAGES:
            raise EventError(
                f"properties.stage={props.get('stage')!r}: manual.override wants one of "
                + ", ".join(STAGES)
            )
        return cls(
            event_id=d["event_id"],
            type=d["type"],
            occurred_at=d.get("occurred_at"),  # type: ignore[arg-type]  # checked by parse_time
            channel=channel,
            received_at=d.get("received_at"),
            lead_id=d.get("lead_id"),
            anonymous_id=d.get("anonymous_id"),
            user_id=d.get("user_id"),
            email=d.get("email"),
            account_id=d.get("account_id"),
            source=d.get("source"),
            properties=dict(props),
            traits=dict(traits),
            context=dict(d.get("context") or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; `Event.from_dict(e.to_dict()) == e`. None fields are left out."""
        out: dict[str, Any] = {
            "event_id": self.event_id,
            "type": self.type,
            "occurred_at": self.occurred_at,
        }
        for name in ("channel", "lead_id", *_OPTIONAL_STR):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        for name in _DICTS:
            value = getattr(self, name)
            if value:
                out[name] = dict(value)
        return out
