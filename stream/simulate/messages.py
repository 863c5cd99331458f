"""Segment messages for one lead, built in time order by a `Trail` (clock, ids, factories)."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple

from stream.times import format_rfc3339

LIBRARY = {"name": "leadstream-simulate", "version": "0.1.0"}
SITE = "https://www.leadstream.example"
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) leadstream-simulate"
# Fixed namespace: messageIds depend on the seed, the lead and the message number only, so a
# rerun with the same seed sends the same ids and the pipeline's event-id dedupe ignores it.
_NAMESPACE = uuid.UUID("6f1c2a52-6a53-4c4e-9f43-3f1f0b7d5a10")

Source = Literal["browser", "server"]


class Message(NamedTuple):
    """One Segment message and how to send it."""

    at: datetime
    """Event time (UTC), the same instant as `body["timestamp"]`; the global sort key."""
    lead: str
    """The lead's user id: the sender never reorders one lead's messages."""
    source: Source
    """Which write key sends it: `server` for CRM outcomes, `browser` for everything else."""
    body: dict[str, Any]
    """The Segment message (`type`, `messageId`, ids, `timestamp`, `context`, ...)."""


@dataclass(frozen=True)
class Journey:
    """One simulated lead: who it is and everything it does, in time order."""

    user_id: str
    persona: str
    anonymous_id: str
    traits: dict[str, Any]
    messages: list[Message] = field(default_factory=list)

    def events(self) -> list[str]:
        """Track event names and page paths in order, for tests and summaries."""
        return [
            m.body.get("event") or m.body.get("properties", {}).get("path", m.body["type"])
            for m in self.messages
        ]


def iso(at: datetime) -> str:
    return format_rfc3339(at, "ms")


class Trail:
    """Builds one lead's messages: a clock moving forward, ids, and Segment message factories.

    Before `identify` messages carry the anonymousId only; the identify call carries both ids;
    afterwards browser messages carry both (as analytics.js does), server ones the userId only.
    """

    def __init__(self, seed: int, journey: Journey, start: datetime, rng: random.Random):
        self.seed = seed
        self.journey = journey
        self.rng = rng
        self.start = start
        self.now = start
        self.identified = False
        self.page_path = "/"

    def day(self, n: float, hour_from: int = 8, hour_to: int = 19) -> None:
        """Move to a random working-hour instant on journey day `n` (never backwards)."""
        base = self.start.replace(hour=0, minute=0, second=0, microsecond=0)
        seconds = self.rng.randint(hour_from * 3600, hour_to * 3600)
        at = base + timedelta(days=n, seconds=seconds)
        self.now = max(at, self.now + timedelta(minutes=1))

    def wait(self, minutes: float = 3.0) -> None:
        self.now += timedelta(seconds=self.rng.uniform(10, minutes * 60))

    def page(self, path: str, title: str = "") -> None:
        self.wait()
        self.page_path = path
        title = title or path.strip("/").replace("/", " · ").replace("-", " ").title() or "Home"
        url = SITE + path
        self._add("page", {"name": title, "properties": {"path": path, "url": url, "title": title}})

    def track(
        self,
        event: str,
        properties: dict[str, Any] | None = None,
        traits: dict[str, Any] | None = None,
    ) -> None:
        self.wait(1.0)
        message: dict[str, Any] = {"event": event, "properties": properties or {}}
        if traits:
            message["traits"] = traits
        self._add("track", message, traits=traits)

    def identify(self, traits: dict[str, Any]) -> None:
        self.wait(0.5)
        self.identified = True
        self._add("identify", {"traits": traits}, traits=traits)

    def crm(
        self,
        event: str,
        properties: dict[str, Any],
        traits: dict[str, Any] | None = None,
    ) -> None:
        """A CRM outcome, sent server side with the server write key and the userId only."""
        self.wait(240.0)
        body: dict[str, Any] = {"event": event, "properties": properties}
        if traits:
            body["traits"] = traits
        self._add("track", body, source="server", traits=traits)

    def _add(
        self,
        kind: str,
        fields: dict[str, Any],
        source: Source = "browser",
        traits: dict[str, Any] | None = None,
    ) -> None:
        self.now = self.now.replace(microsecond=self.now.microsecond // 1000 * 1000)
        journey = self.journey
        n = len(journey.messages)
        body: dict[str, Any] = {
            "type": kind,
            "messageId": str(uuid.uuid5(_NAMESPACE, f"{self.seed}/{journey.user_id}/{n}")),
            "timestamp": iso(self.now),
        }
        context: dict[str, Any] = {"library": dict(LIBRARY)}
        if source == "browser":
            body["anonymousId"] = journey.anonymous_id
            url = SITE + self.page_path
            context |= {"page": {"path": self.page_path, "url": url}, "userAgent": USER_AGENT}
        if self.identified or source == "server":
            body["userId"] = journey.user_id
        if traits and kind == "track":
            context["traits"] = traits  # Segment's place for traits on a track call
        body |= fields
        body["context"] = context
        journey.messages.append(Message(self.now, journey.user_id, source, body))
