"""The canonical Event, the event types the engine treats specially, and event-time helpers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from stream.errors import LeadstreamError
from stream.times import EPOCH as EPOCH
from stream.times import US_PER_DAY as US_PER_DAY
from stream.times import US_PER_SECOND as US_PER_SECOND
from stream.times import format_us as format_us
from stream.times import is_time, parse_us

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
        return parse_us(value)
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


@dataclass(slots=True)
class Event:
    """One canonical event (schemas/canonical-event.schema.json). Never changed once built
    (`with_changes` makes a copy); not a frozen dataclass because building a frozen one costs
    seven times as much, and every event is built.

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
        self.t_us = parse_time(self.occurred_at)

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
        return _fast_event(d) or cls._checked(d)

    @classmethod
    def _checked(cls, d: Mapping[str, Any]) -> Event:
        """`from_dict` field by field: what `_fast_event` falls back on to name what is wrong."""
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

    def with_changes(self, **changes: Any) -> Event:
        """A copy with some fields changed (a merge's identify made from an event)."""
        return replace(self, **changes)

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


_EVENT_FIELDS = frozenset(
    ("event_id", "type", "occurred_at", "channel", "lead_id", *_OPTIONAL_STR, *_DICTS)
)
_NEW = object.__new__


def _fast_event(d: Any) -> Event | None:
    """The Event of a well-formed canonical event dict, or None for anything `_checked` must
    look at (it then raises naming the field, or builds the same Event).

    Why: every event is built once per worker record and replay line; the field-by-field
    checks with abstract-type tests cost more than the scoring. This path accepts only plain
    dicts whose every checked field has its plain type, and builds the very same Event.
    """
    if type(d) is not dict:
        return None
    event_id, type_, occurred = d.get("event_id"), d.get("type"), d.get("occurred_at")
    if type(event_id) is not str or type(type_) is not str or not event_id or not type_:
        return None
    if type(occurred) is not str or not occurred or type_ == MANUAL_OVERRIDE:
        return None
    channel = d.get("channel")
    if channel is not None and channel not in CHANNELS:
        return None
    received, anon, user = d.get("received_at"), d.get("anonymous_id"), d.get("user_id")
    email, account, source = d.get("email"), d.get("account_id"), d.get("source")
    lead_id = d.get("lead_id")
    if (
        (received is not None and type(received) is not str)
        or (anon is not None and type(anon) is not str)
        or (user is not None and type(user) is not str)
        or (email is not None and type(email) is not str)
        or (account is not None and type(account) is not str)
        or (source is not None and type(source) is not str)
        or (lead_id is not None and type(lead_id) is not str)
    ):
        return None
    props, traits, context = d.get("properties"), d.get("traits"), d.get("context")
    if (
        (props is not None and type(props) is not dict)
        or (traits is not None and type(traits) is not dict)
        or (context is not None and type(context) is not dict)
    ):
        return None
    if traits:
        for key, value in traits.items():
            want = _TRAIT_TYPES.get(key)
            if want is not None and value is not None:
                if type(value) is bool and bool not in want:
                    return None
                if not isinstance(value, want):
                    return None
    try:
        t_us = parse_us(occurred)
    except ValueError:
        return None
    if received is not None and not is_time(received):
        return None
    event: Event = _NEW(Event)
    event.event_id = event_id
    event.type = type_
    event.occurred_at = occurred
    event.channel = channel
    event.received_at = received
    event.lead_id = lead_id
    event.anonymous_id = anon
    event.user_id = user
    event.email = email
    event.account_id = account
    event.source = source
    event.properties = dict(props) if props else {}
    event.traits = dict(traits) if traits else {}
    event.context = dict(context) if context else {}
    event.t_us = t_us
    return event
