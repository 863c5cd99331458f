"""Identity: anonymous ids, user ids and emails to one stable lead_id, without I/O.

Each lead lives in one *home partition*: a known lead where its user id hashes, a cookie
visitor where its anonymous id hashes, an email visitor where its (normalised) email hashes.
The collector keys every record so that it lands in the home partition of the person it
belongs to (`stream/collector/directory.py`); a record that lands elsewhere is forwarded.

A user id is authoritative: an event that carries one belongs to that lead. When an event ties
a user id to an anonymous id (or an identify ties it to an email) for the first time, the
visitor's history joins the lead at that instant (scoring-model.md section 6). If the visitor
lives in this partition it is merged at once; otherwise the lead *pulls* it: a pull goes to the
visitor's home partition, which answers with the visitor's state, and the lead's later events
wait behind the merge (`stream/pipeline/core.py`). An anonymous id that already belongs to
another known lead is a conflict: its scored events stay where they are.

Emails never appear in lead ids or alias keys: both use a keyed HMAC of the normalised
address, so a lead id in a log or an API path does not tell who it is, and nobody without the
secret can test whether an address is a lead.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

ANON_PREFIX = "anon:"
EMAIL_PREFIX = "email:"
DEV_IDENTITY_SECRET = "leadstream-dev-identity-secret"
HOMES_CACHED = 200_000  # partitions of recently seen keys kept (about 30 MB at most)


def secret_or_dev(secret: str) -> str:
    """The identity secret; without one, the development secret, said loudly (lead ids made
    with it are not private: set LEADSTREAM_IDENTITY_SECRET in production)."""
    if secret:
        return secret
    logging.getLogger("leadstream").warning(
        "LEADSTREAM_IDENTITY_SECRET is not set: email-only lead ids use the development "
        "secret and anyone can test whether an address is a lead; set a long random value"
    )
    return DEV_IDENTITY_SECRET


def normalise_email(email: str) -> str:
    return email.strip().lower()


def email_digest(email: str, secret: str) -> str:
    """Keyed digest of a normalised email: what lead ids and alias keys carry instead of it."""
    mac = hmac.new(secret.encode(), normalise_email(email).encode(), hashlib.sha256)
    return mac.hexdigest()[:24]


def is_visitor(lead_id: str) -> bool:
    return lead_id.startswith((ANON_PREFIX, EMAIL_PREFIX))


@dataclass(frozen=True)
class Pull:
    """A visitor whose history joins a lead, fetched from the visitor's home partition."""

    kind: str  # "a" (cookie) or "e" (email)
    value: str  # the anonymous id, or the email digest
    home: int  # the visitor's home partition

    @property
    def alias(self) -> str:
        return f"{self.kind}:{self.value}"

    @property
    def visitor_id(self) -> str:
        return (ANON_PREFIX if self.kind == "a" else EMAIL_PREFIX) + self.value


@dataclass(init=False)
class Resolution:
    """What the identity step decided for one event in one partition (`__init__` written
    out: one is made per event)."""

    lead_id: str
    home: int  # the lead's home partition
    alias_writes: dict[str, str]
    local_visitors: list[str]  # visitors here, to merge now
    pulls: list[Pull]  # visitors elsewhere, to pull
    conflict_with: str | None  # the other known lead an anonymous id belongs to

    def __init__(
        self,
        lead_id: str,
        home: int,
        alias_writes: dict[str, str] | None = None,
        local_visitors: list[str] | None = None,
        pulls: list[Pull] | None = None,
        conflict_with: str | None = None,
    ) -> None:
        self.lead_id = lead_id
        self.home = home
        self.alias_writes = {} if alias_writes is None else alias_writes
        self.local_visitors = [] if local_visitors is None else local_visitors
        self.pulls = [] if pulls is None else pulls
        self.conflict_with = conflict_with


def _as_str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


class Identity:
    """Resolves events against one partition's alias table (`lookup`), for `partitions`."""

    def __init__(self, partitions: int, secret: str, partition_of: Callable[[bytes, int], int]):
        self.partitions = partitions
        self.secret = secret
        self.partition_of = partition_of
        # key -> partition: the partitioner's hash is pure Python and every event asks
        self.homes: dict[bytes, int] = {}

    def _home(self, key: bytes) -> int:
        home = self.homes.get(key)
        if home is None:
            home = 0 if self.partitions == 1 else self.partition_of(key, self.partitions)
            if len(self.homes) >= HOMES_CACHED:
                self.homes.clear()
            self.homes[key] = home
        return home

    def home_of_user(self, user_id: str) -> int:
        return self._home(user_id.encode())

    def home_of(self, lead_id: str) -> int | None:
        """The home partition of a lead id, where it can be told from the id alone (known
        leads and cookie visitors; an email visitor's id is a digest, not its key)."""
        if lead_id.startswith(EMAIL_PREFIX):
            return None
        if lead_id.startswith(ANON_PREFIX):
            return self._home(lead_id[len(ANON_PREFIX) :].encode())
        return self.home_of_user(lead_id)

    def resolve(
        self, event: Mapping[str, Any], partition: int, lookup: Callable[[str], str | None]
    ) -> Resolution:
        """Decide the lead of one canonical event arriving in `partition`.

        ValueError when the event has no id at all (the collector never sends one).
        """
        anon, user, email = event.get("anonymous_id"), event.get("user_id"), event.get("email")
        if anon is not None:
            anon = str(anon).strip() or None  # `_as_str`, written out: asked for every event
        if user is not None:
            user = str(user).strip() or None
        if email is not None:
            email = str(email).strip() or None
        if user is None and isinstance(event.get("lead_id"), str) and event["lead_id"]:
            user = str(event["lead_id"]) if not is_visitor(str(event["lead_id"])) else None
        if user is not None:
            found = Resolution(lead_id=user, home=self.home_of_user(user))
            if anon is not None:
                self._claim(
                    found,
                    "a",
                    anon,
                    self._home(anon.encode()),
                    partition,
                    lookup,
                )
            if email is not None and event.get("type") == "identify":
                self._claim(
                    found,
                    "e",
                    email_digest(email, self.secret),
                    self._home(normalise_email(email).encode()),
                    partition,
                    lookup,
                    conflicts=False,
                )
            return found
        if anon is not None:
            return self._follow("a", anon, anon.encode(), partition, lookup)
        if email is not None:
            digest = email_digest(email, self.secret)
            return self._follow("e", digest, normalise_email(email).encode(), partition, lookup)
        raise ValueError("event has no anonymous_id, user_id or email")

    def _follow(
        self,
        kind: str,
        value: str,
        key: bytes,
        partition: int,
        lookup: Callable[[str], str | None],
    ) -> Resolution:
        """An event with a visitor id only: the lead its alias names, else the visitor."""
        alias = f"{kind}:{value}"
        known = lookup(alias)
        visitor_home = self._home(key)
        if known is not None:
            home = self.home_of(known)
            return Resolution(lead_id=known, home=visitor_home if home is None else home)
        visitor = (ANON_PREFIX if kind == "a" else EMAIL_PREFIX) + value
        if visitor_home != partition:
            # Not the visitor's home: it may be known there (or not yet); it is decided there.
            return Resolution(lead_id=visitor, home=visitor_home)
        return Resolution(lead_id=visitor, home=visitor_home, alias_writes={alias: visitor})

    def _claim(
        self,
        found: Resolution,
        kind: str,
        value: str,
        visitor_home: int,
        partition: int,
        lookup: Callable[[str], str | None],
        *,
        conflicts: bool = True,
    ) -> None:
        """The user `found.lead_id` claims a cookie or an email: merge its visitor, once."""
        alias = f"{kind}:{value}"
        current = lookup(alias)
        user = found.lead_id
        if current == user:
            return
        pull = Pull(kind, value, visitor_home)
        if current is None:
            found.alias_writes[alias] = user
            if visitor_home != partition:
                found.pulls.append(pull)  # the visitor's home decides: history, or nothing
        elif is_visitor(current):
            found.alias_writes[alias] = user
            found.local_visitors.append(current)
        elif conflicts:
            found.conflict_with = current
