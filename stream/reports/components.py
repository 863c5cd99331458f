"""The parts of a history a replay keeps apart, and the stream time that still ties them.

A replay applies each lead's events to that lead's state alone; two people meet only through
identity, when an event carries ids of both (a visitor identified as a user, an email, a lead
id written out). So the lines of a history fall into *components* — the connected groups of
ids, found here with a union-find over every id of every line, namespaced as identity keys
them (user ids, anonymous ids, emails and their keyed digests, lead ids) — and a component's
leads end the same whichever other components are replayed with them.

Except for one thing: timers. The replay fires a lead's daily ticks and SLA deadlines when the
partition's *stream time* (the largest event time applied so far, over every lead) passes the
minute the timer is filed under, and a fired timer moves the lead's clock. Replaying a few
components alone would fire their timers later (at their own next event) than the whole
history does. `Layout.replay_input` therefore adds *clock lines* to a partial replay: an event
of its own throw-away lead, of a type no model scores, stamped with the whole history's stream
time at the line where it first passed a minute that one of the replayed leads may have a timer
under (every midnight of the model's time zone; every handoff instant plus each SLA the
component's handoffs carry, rounded to the minute as the engine rounds them). The partial
replay then ticks its leads at the same places, with the same instants, as the whole replay.
Which minutes a replay needs is only known from its own output (a handoff at a new instant
files a new deadline), so the caller checks `sla_minutes` of the output against the minutes it
gave and replays again with more when they fall short (`stream.reports.pool`).

Lines that do not move stream time as their event time says — a late event (stamped before the
stream time of the lines before it: its lead's clock, not its stamp, goes to the timers),
an event id seen before (a duplicate moves no clock), a legacy `identity.alias` record — make
the timers of *other* leads depend on their lead's state. Their components are replayed in every
partial replay (`irregular`), with clock lines around them. A history of such lines only is
replayed whole. Where a partial replay cannot be exact (`unsupported`), reports replay the whole
history for every model; the test suite compares both ways on generated histories.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from stream.reports.history import History
from stream.scoring.events import format_us, parse_time
from stream.scoring.identity import (
    ANON_PREFIX,
    DEV_IDENTITY_SECRET,
    EMAIL_PREFIX,
    email_digest,
    normalise_email,
)
from stream.scoring.model import US_PER_MINUTE, Model, sla_us

CLOCK_PREFIX = "~reports-clock~"
"""Lead and event ids of clock lines (a history that uses the prefix is replayed whole)."""
CLOCK_TYPE = "leadstream.reports.clock"
"""The clock lines' event type: in no model's catalogue, so it scores and moves nothing."""
ALIAS_TYPE = "identity.alias"
MINUTES_PER_DAY = 1440
SLA_BREACHED = "sla_breached"
"""The escalation's reason: it stays in its stage and starts no timer."""
IDENTIFIED = "identified"
"""The reason of a hand-raising visitor's handoff at its merge, which keeps its own start."""


def is_clock(lead_id: str) -> bool:
    return lead_id.startswith(CLOCK_PREFIX)


class _Ids:
    """Union-find over identity keys; each key's root names its component."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, key: str) -> str:
        parent = self.parent
        root = parent.setdefault(key, key)
        while root != parent[root]:
            root = parent[root]
        while key != root:
            parent[key], key = root, parent[key]
        return root

    def union(self, keys: Sequence[str]) -> str:
        root = self.find(keys[0])
        for key in keys[1:]:
            other = self.find(key)
            if other != root:
                self.parent[other] = root
        return root


def _lead_key(lead_id: str) -> str:
    """The identity key a lead id stands for: a visitor's cookie or email digest, else a user."""
    if lead_id.startswith(ANON_PREFIX):
        return "a:" + lead_id[len(ANON_PREFIX) :]
    if lead_id.startswith(EMAIL_PREFIX):
        return "d:" + lead_id[len(EMAIL_PREFIX) :]
    return "u:" + lead_id


@dataclass(frozen=True)
class Layout:
    """A history's components and stream time, for replays of some components only."""

    component: list[int]
    """Component of each line."""
    members: dict[int, list[int]]
    """Line indices of each component, ascending."""
    keys: dict[str, int]
    """Identity key (`u:user`, `a:cookie`, `d:email digest`, `e:email`) -> component."""
    st_us: list[int]
    """The whole replay's stream time after each line (µs)."""
    st_days: list[float]
    """The same in days, computed as the tick scheduler computes it."""
    irregular: frozenset[int]
    """Components with lines that do not move stream time by their stamp: always replayed."""
    pinned: frozenset[int]
    """Lines around irregular ones that need a clock line in every partial replay."""
    start_us: int
    end_us: int
    """The whole replay's last event time: where it evaluates every lead at the end."""
    unsupported: str | None = None
    """Why a partial replay could not be exact (None: it can)."""

    @classmethod
    def of(cls, history: History, secret: str = DEV_IDENTITY_SECRET) -> Layout:
        """The layout of a history without bad lines (`History.without`); `secret` is the
        identity secret of the replays (email visitors' lead ids are digests made with it)."""
        ids = _Ids()
        roots: list[str] = []
        digests: dict[str, str] = {}
        unsupported = None
        for event in history.per_line:
            if event is None:
                raise ValueError("the layout of a history with bad lines")
            keys: list[str] = []
            if event.lead_id is not None:  # taken as written: the replay trusts it verbatim
                keys.append(_lead_key(event.lead_id))
                if is_clock(event.lead_id):
                    unsupported = f"a lead id starts with {CLOCK_PREFIX!r}"
            for value, prefix in ((event.user_id, "u:"), (event.anonymous_id, "a:")):
                if value is not None and value.strip():
                    keys.append(prefix + value.strip())
            if event.email is not None and event.email.strip():
                norm = normalise_email(event.email)
                if norm not in digests:
                    digests[norm] = email_digest(norm, secret)
                keys.extend(("e:" + norm, "d:" + digests[norm]))
            if not keys:  # History.bad names these lines
                raise ValueError("a line without any id reached the layout")
            roots.append(ids.union(keys))
        numbers: dict[str, int] = {}
        component = [numbers.setdefault(ids.find(root), len(numbers)) for root in roots]
        members: dict[int, list[int]] = {}
        for index, c in enumerate(component):
            members.setdefault(c, []).append(index)
        where = {key: numbers[ids.find(key)] for key in ids.parent}
        events = [e for e in history.per_line if e is not None]
        t_us = [e.t_us for e in events]
        st_us, irregular_lines = _stream_time(
            t_us, [e.type for e in events], [e.event_id for e in events]
        )
        return cls(
            component,
            members,
            where,
            st_us,
            [us / 86_400_000_000 for us in st_us],
            frozenset(component[i] for i in irregular_lines),
            _pinned(len(t_us), irregular_lines),
            min(t_us, default=0),
            max(t_us, default=0),
            unsupported,
        )

    def component_of(self, lead_id: str) -> int | None:
        """The component of a lead id of the replay's output (None for a clock line's lead)."""
        if is_clock(lead_id):
            return None
        found = self.keys.get(_lead_key(lead_id))
        if found is None:
            raise ValueError(f"lead {lead_id!r} of a replay is not in the history's components")
        return found

    def midnights(self, model: Model) -> list[int]:
        """Every 00:00 of the model's time zone a daily tick can be filed under (minutes)."""
        out = []
        at = model.next_midnight(self.start_us)
        while at <= self.end_us:
            out.append(at // US_PER_MINUTE)
            at = model.next_midnight(at)
        return out

    def crossing(self, minute: int) -> int:
        """Index of the line at which the whole replay's stream time first passes `minute`
        (the line count when it never does): where the tick scheduler fires what is filed
        there."""
        return bisect.bisect_right(self.st_days, minute / MINUTES_PER_DAY)

    def replay_input(
        self, lines: Sequence[str], components: Iterable[int], minutes: Iterable[int]
    ) -> list[str]:
        """The history's `lines` of these components (and of every irregular one) in order,
        with a clock line wherever the whole replay's stream time first passes one of
        `minutes` and around irregular lines, unless a replayed line already stands there."""
        chosen = set(components) | self.irregular
        picked = sorted(i for c in chosen for i in self.members.get(c, ()))
        clocks = {self.crossing(m) for m in minutes} | self.pinned
        fill = sorted(i for i in clocks if i < len(lines) and self.component[i] not in chosen)
        out: list[str] = []
        j = 0
        for i in picked:
            while j < len(fill) and fill[j] < i:
                out.append(self._clock_line(fill[j]))
                j += 1
            out.append(lines[i])
        out.extend(self._clock_line(i) for i in fill[j:])
        return out

    def _clock_line(self, index: int) -> str:
        name = f"{CLOCK_PREFIX}{index}"
        return orjson.dumps(
            {
                "event_id": name,
                "type": CLOCK_TYPE,
                "channel": "web",
                "occurred_at": format_us(self.st_us[index], "us"),
                "lead_id": name,
            }
        ).decode()


def _stream_time(
    t_us: Sequence[int], kinds: Sequence[str], event_ids: Sequence[str]
) -> tuple[list[int], list[int]]:
    """Stream time after each line, and the irregular lines (which do not move it).

    A regular line's lead ends at its own stamp (its clock was at most the stream time before,
    which is at most the stamp), so the scheduler is advanced to the stamp. An irregular one's
    lead keeps a clock at or below the stream time: no move."""
    out: list[int] = []
    irregular: list[int] = []
    seen: set[str] = set()
    now: int | None = None
    for index, (t, kind, event_id) in enumerate(zip(t_us, kinds, event_ids, strict=True)):
        late = now is not None and t < now
        if late or kind == ALIAS_TYPE or event_id in seen:
            irregular.append(index)
        else:
            now = t
        seen.add(event_id)
        out.append(t if now is None else now)
    return out, irregular


def _pinned(count: int, irregular: Sequence[int]) -> frozenset[int]:
    """For each run of irregular lines: the regular line just before it, which set the stream
    time the irregular lines tick other leads at (so a partial replay's stream time is the
    whole one's there), and the first regular line after it, which ticks at its own stamp
    whatever the irregular lines left overdue."""
    out: set[int] = set()
    marks = set(irregular)
    for index in irregular:
        if index - 1 not in marks and index > 0:
            out.add(index - 1)
        if index + 1 not in marks and index + 1 < count:
            out.add(index + 1)
    return frozenset(out)


def sla_minutes(transitions: Iterable[Mapping[str, Any]]) -> set[int]:
    """Minutes SLA deadlines are filed under, from the transitions of ONE component, as the
    engine sets them: a handoff's instant plus its route's SLA (`stages._start_sla`), and for a
    hand-raising visitor identified into a lead, the instant the visitor entered its stage
    plus the SLA of the route the merge gives (`engine.merge_states`); rounded up to the
    minute, both neighbours of a boundary (`at` is printed from a float). An escalation starts
    no timer."""
    out: set[int] = set()
    entries: set[int] = set()
    merged: set[int] = set()
    for tr in transitions:
        at = parse_time(tr["at"], "at")
        if tr["from"] != tr["to"]:
            entries.add(at)
        duration = sla_us(str(tr["sla"])) if tr.get("sla") else None
        if duration is None or tr["reason"] == SLA_BREACHED:
            continue
        out |= _minutes(at + duration)
        if tr["reason"] == IDENTIFIED:
            merged.add(duration)
    for at in entries:
        for duration in merged:
            out |= _minutes(at + duration)
    return out


def _minutes(due_us: int) -> set[int]:
    return {-(-(due_us + slack) // US_PER_MINUTE) for slack in (-2, 2)}
