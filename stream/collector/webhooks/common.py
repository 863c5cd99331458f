"""What every webhook provider's parser shares: the context it is handed, the signature
timestamp window, and one provider event to a canonical event or a dead letter.

Provider modules (`sendgrid`, `mailgun`, `generic`) import this module and the package's
`__init__` imports them: no provider needs the package itself, so nothing imports in a circle.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from stream.collector.eventtime import check_not_future, parse_time
from stream.collector.mapping import UNMAPPED, EventMapping
from stream.collector.segment import (
    Accepted,
    Outcome,
    Rejected,
    Source,
    check_text,
    identity_key,
    make_event,
    normalise_email,
)
from stream.errors import (
    LeadstreamError,
    SchemaViolationError,
    SignatureInvalidError,
    SizeViolationError,
)


@dataclass(frozen=True)
class WebhookContext:
    """What a provider parser needs besides the request: source, mapping, clock, limits."""

    source: Source
    mapping: EventMapping
    received_at: datetime
    max_event_bytes: int
    secret: str
    tolerance_seconds: float


Verifier = Callable[[bytes, Mapping[str, str], WebhookContext], "str | None"]
"""Checks the signature and timestamp; returns the token or id to remember against replays
(None when the provider has none); SignatureInvalidError when the request is not authentic."""
Parser = Callable[[bytes, Mapping[str, str], WebhookContext], list[Outcome]]
"""Maps a verified body to outcomes."""


# Unix seconds as providers send them: ASCII digits, no sign, point, exponent, underscore,
# space or leading zero. float() would accept `1700000000e0` and `1700000000.0`: with Mailgun,
# whose signature covers `timestamp + token`, moving a token's leading `e0` into the timestamp
# kept the signature valid and made a "new" token of a captured one (issue 28).
_UNIX_TIME = re.compile(r"[1-9][0-9]{0,11}", re.ASCII)


def unix_time(timestamp: Any, what: str) -> str:
    """The timestamp's exact text when it is a strict unix time, else SignatureInvalidError.

    An integer (Mailgun's JSON may carry one) becomes its decimal text; anything else must
    already be that text. The caller signs and remembers this text, never a re-formatted one.
    """
    if isinstance(timestamp, int) and not isinstance(timestamp, bool):
        timestamp = str(timestamp)
    if not isinstance(timestamp, str) or not _UNIX_TIME.fullmatch(timestamp):
        raise SignatureInvalidError(f"{what} is not a unix time (want decimal digits only)")
    return timestamp


def check_timestamp(timestamp: Any, context: WebhookContext, what: str) -> str:
    """The strict unix time (see `unix_time`) of `timestamp`; SignatureInvalidError unless it
    is within the tolerance of now."""
    text = unix_time(timestamp, what)
    age = abs(context.received_at.timestamp() - int(text))
    if not age <= context.tolerance_seconds:
        raise SignatureInvalidError(
            f"{what} is {age:.0f}s away from now (tolerance {context.tolerance_seconds:g}s)"
        )
    return text


def email_event(
    context: WebhookContext,
    item: Mapping[str, Any],
    *,
    event_type: str | None,
    provider_event: str,
    event_id: Any,
    email: Any,
    timestamp: Any,
    properties: dict[str, Any],
    user_agent: Any = None,
    user_id: Any = None,
    anonymous_id: Any = None,
) -> Outcome:
    """One provider event as an accepted canonical event or a dead letter (raw = the item)."""
    raw = orjson.dumps(item)
    try:
        if len(raw) > context.max_event_bytes:
            raise SizeViolationError(f"event of {len(raw)} bytes exceeds the limit")
        if isinstance(email, str):
            check_text("email", email)
        address = normalise_email(email)
        user = _ident(user_id)
        anonymous = _ident(anonymous_id)
        if not (address or user or anonymous):
            raise SchemaViolationError("no recipient email or user id: cannot tie it to a lead")
        occurred = (
            parse_time(timestamp, "timestamp") if timestamp is not None else context.received_at
        )
        check_not_future(occurred, context.received_at)
        if event_type is None:
            event_type = UNMAPPED
            properties["event_name"] = f"{context.source.name}.{provider_event}"[:256]
        event_context: dict[str, Any] = {"library": {"name": f"{context.source.name}-webhook"}}
        if isinstance(user_agent, str) and user_agent:
            event_context["userAgent"] = user_agent[:512]
        event = make_event(
            event_id=_ident(event_id) or str(uuid.uuid4()),
            event_type=event_type,
            channel=context.mapping.channel(event_type),
            occurred_at=occurred,
            received_at=context.received_at,
            anonymous_id=anonymous,
            user_id=user,
            email=address,
            account_id=None,
            source=context.source.name,
            properties={k: v for k, v in properties.items() if v is not None},
            traits=context.mapping.traits({}, address),
            context=event_context,
        )
    except LeadstreamError as exc:
        key = normalise_email(email)
        return Rejected(raw, key.encode() if key else None, exc)
    return Accepted(event, identity_key(event), event["event_id"] if event_id else None)


def _ident(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return check_text("id", value.strip()[:512])
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None
