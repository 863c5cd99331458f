"""Identity: anonymous ids, user ids and emails to one stable lead_id, without I/O.

The collector keys every record by its identity key (anonymous id, else user id, else email),
so all records of one anonymous id meet in one partition, where its alias lives. User ids are
authoritative: an event with a user id belongs to that lead. A visitor (anonymous id or an
email we have not matched yet) is scored under a visitor lead id until it identifies; then its
history is handed over to the known lead, once. An anonymous id that already belongs to another
known lead is a conflict: its scored events stay where they are.

The hand-over takes two hops (the visitor's partition ships its state to the lead's), so a
later event of the same anonymous id sent straight to the lead could overtake it. Such events
therefore keep travelling through the visitor's partition (`via`), which forwards them in
order after the merge.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

ANON_PREFIX = "anon:"
EMAIL_PREFIX = "email:"


def alias_key(kind: str, value: str) -> str:
    """Key of the alias table: `a:<anonymous id>` or `e:<email>`."""
    return f"{kind}:{value.strip().lower() if kind == 'e' else value}"


def visitor_lead_id(kind: str, value: str) -> str:
    """Lead id of a not-yet-identified visitor. Emails are hashed: lead ids reach logs and keys."""
    if kind == "a":
        return ANON_PREFIX + value
    digest = hashlib.sha256(value.strip().lower().encode()).hexdigest()[:24]
    return EMAIL_PREFIX + digest


def is_visitor(lead_id: str) -> bool:
    return lead_id.startswith((ANON_PREFIX, EMAIL_PREFIX))


def home_key(lead_id: str) -> str:
    """The key whose partition holds a lead's state and its by-lead records.

    A cookie visitor lives where the collector puts its records (keyed by the anonymous id),
    so its events are scored in the partition they arrive in, without a hop through
    `leads.events.by_lead`; a known lead lives under its own id, as does an email visitor
    (its lead id is a hash: the email it came from is not known later).
    """
    return lead_id[len(ANON_PREFIX) :] if lead_id.startswith(ANON_PREFIX) else lead_id


@dataclass
class Resolution:
    """What the identity step decided for one record."""

    lead_id: str
    alias_writes: dict[str, str] = field(default_factory=dict)
    handover_from: str | None = None  # a visitor lead whose history joins `lead_id`
    conflict_with: str | None = None  # the other known lead an anonymous id belongs to
    email_alias: tuple[str, str] | None = None  # (email, lead_id) to record in email's partition
    via: str | None = None  # a handed-over visitor lead whose partition forwards the event


def _as_str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def resolve(event: Mapping[str, Any], lookup: Callable[[str], str | None]) -> Resolution:
    """Decide the lead of one canonical event; `lookup` reads this partition's alias table."""
    anon, user, email = (
        _as_str(event.get("anonymous_id")),
        _as_str(event.get("user_id")),
        _as_str(event.get("email")),
    )
    if event.get("type") == "identity.alias":
        # A control record sent to the email's partition: "this email belongs to lead X".
        target = _as_str(event.get("lead_id"))
        if email is None or target is None:
            raise ValueError("identity.alias needs email and lead_id")
        return _claim("e", email, target, lookup)
    if anon is not None:
        if user is not None:
            resolution = _claim("a", anon, user, lookup)
        else:
            resolution = _follow("a", anon, lookup)
    elif user is not None:
        resolution = Resolution(lead_id=user)
    elif email is not None:
        return _follow("e", email, lookup)
    else:
        raise ValueError("event has no anonymous_id, user_id or email")
    if email is not None and user is not None and event.get("type") == "identify":
        resolution.email_alias = (email, user)
    return resolution


def _handed_over(key: str) -> str:
    return f"h:{key}"


def _follow(kind: str, value: str, lookup: Callable[[str], str | None]) -> Resolution:
    key = alias_key(kind, value)
    known = lookup(key)
    if known is not None:
        return Resolution(lead_id=known, via=lookup(_handed_over(key)))
    visitor = visitor_lead_id(kind, value)
    return Resolution(lead_id=visitor, alias_writes={key: visitor})


def _claim(kind: str, value: str, user: str, lookup: Callable[[str], str | None]) -> Resolution:
    key = alias_key(kind, value)
    current = lookup(key)
    if current is None:
        return Resolution(lead_id=user, alias_writes={key: user})
    if current == user:
        return Resolution(lead_id=user, via=lookup(_handed_over(key)))
    if is_visitor(current):
        return Resolution(
            lead_id=user,
            alias_writes={key: user, _handed_over(key): current},
            handover_from=current,
        )
    return Resolution(lead_id=user, conflict_with=current)
