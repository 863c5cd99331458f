"""The benchmark's event file: deterministic, seeded, realistic canonical events.

Why a generator of its own: the benchmark needs millions of events in seconds, a skewed
(Zipf-like) key distribution like real traffic (a few hot visitors, a long tail), realistic
300–400-byte records and a realistic share of stage changes (identifies, hand-raisers and
decision makers among mostly low-intent traffic). The journey simulator is built for
correctness of journeys through the collector, not for volume.

Leads are numbered 0..leads-1. About a quarter are known (their first event is an `identify`
with fit traits, keyed by user id: one `anonymous → lead` stage change each); the rest stay
anonymous visitors keyed by their anonymous id, so no record ever needs a cross-partition
hand-over and the event key always equals the collector's identity key.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from stream.times import US_PER_SECOND, format_us
from stream.topics import CHANNEL_TOPIC

START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
SPAN = timedelta(days=14)  # event time covered by a drained file: decay, windows, daily ticks
KNOWN_SHARE = 0.25
ZIPF_S = 1.0
ZIPF_Q = 20.0  # Zipf–Mandelbrot offset: the hottest lead gets ~0.5 % of the traffic, not 8 %

# (type, channel, weight): mostly top-of-funnel; a few decision-group and hand-raiser events.
TYPES: tuple[tuple[str, str, float], ...] = (
    ("web.page_view", "web", 42.0),
    ("web.product_page_view", "web", 10.0),
    ("web.pricing_view", "web", 4.0),
    ("web.careers_view", "web", 1.0),
    ("email.open", "email", 14.0),
    ("email.click", "email", 7.0),
    ("email.unsubscribe", "email", 0.3),
    ("social.engagement", "social", 7.0),
    ("content.ebook_download", "web", 4.0),
    ("content.case_study_download", "web", 2.0),
    ("webinar.registered", "web", 2.0),
    ("webinar.attended", "web", 1.0),
    ("trial.signup", "product", 0.5),
    ("product.activation", "product", 0.8),
    ("cart.abandoned", "web", 0.4),
    ("sales.demo_requested", "web", 0.3),
)
_TYPE_CUM = list(itertools.accumulate(w for _, _, w in TYPES))
TRAITS: dict[str, tuple[tuple[Any, ...], tuple[float, ...]]] = {
    "seniority": (
        (
            "individual_contributor",
            "manager",
            "director",
            "vp",
            "c_level",
            "founder",
            "student",
            "intern",
            "unknown",
        ),
        (35, 20, 12, 6, 4, 2, 8, 3, 10),
    ),
    "buying_role": (("decision_maker", "influencer", "user", "unknown"), (15, 25, 40, 20)),
    "employees": ((5, 30, 120, 600, 5000), (20, 25, 25, 20, 10)),
    "industry": (
        ("software", "financial_services", "healthcare", "manufacturing", "retail", "education"),
        (30, 12, 10, 12, 10, 26),
    ),
    "country": (
        ("US", "GB", "DE", "FR", "CA", "NL", "AU", "IN", "BR"),
        (35, 10, 10, 6, 5, 4, 4, 14, 12),
    ),
    "email_type": (("business", "free", "disposable"), (60, 35, 5)),
    "budget_usd": ((0, 5000, 25000, 100000), (50, 20, 20, 10)),
    "need": ((True, False), (40, 60)),
    "timeline_months": ((3, 6, 12), (25, 25, 50)),
}
PAGES = ("/", "/blog/lead-scoring", "/product/overview", "/pricing", "/customers", "/careers")


class Record(NamedTuple):
    """One event as it goes to Kafka."""

    channel: str
    """Canonical channel; the topic is `Topics.events(channel)` (product rides on web)."""
    key: bytes
    """Identity key: user id for known leads, anonymous id for visitors."""
    value: bytes
    """Canonical event JSON."""


def lead_ids(lead: int) -> tuple[str | None, str | None]:
    """(user_id, anonymous_id) of lead number `lead`: known leads have a user id only."""
    known = (lead * 2654435761) % 1000 < KNOWN_SHARE * 1000  # a cheap, fixed hash
    return (f"u-{lead:08d}", None) if known else (None, f"a-{lead:08d}-{lead * 2654435761:x}")


@functools.lru_cache(maxsize=4096)
def _second(epoch_s: int) -> str:
    return format_us(epoch_s * US_PER_SECOND, "s")[:-1]  # without the Z


def rfc3339_ms(epoch_ms: int) -> str:
    """RFC 3339 'Z' with milliseconds; cached per second: formatting was the generator's cost."""
    return f"{_second(epoch_ms // 1000)}.{epoch_ms % 1000:03d}Z"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def make_event(
    rng: random.Random, lead: int, seq: int, at_ms: int, *, first: bool, received_ms: int
) -> dict[str, Any]:
    """One canonical event of `lead`; `first` makes a known lead's first event its identify."""
    user_id, anon_id = lead_ids(lead)
    type_, channel, _ = TYPES[bisect.bisect_right(_TYPE_CUM, rng.random() * _TYPE_CUM[-1])]
    if user_id is None and channel == "email":
        type_, channel = "web.page_view", "web"  # email events come with an email address
    email = f"{user_id}@example-{lead % 997}.com" if user_id else None
    props: dict[str, Any] = {}
    traits: dict[str, Any] = {}
    if user_id is not None and first:
        type_, channel = "identify", "web"
        for name, (values, weights) in TRAITS.items():
            traits[name] = rng.choices(values, weights)[0]
        if not traits["budget_usd"]:
            del traits["budget_usd"]
    elif channel == "email":
        props["message_id"] = f"m-{rng.randrange(400):04d}"
    elif type_.startswith("content."):
        props["asset_id"] = f"asset-{rng.randrange(40):03d}"
    elif type_.startswith("webinar."):
        props["webinar_id"] = f"wb-{rng.randrange(12):02d}"
    page = PAGES[rng.randrange(len(PAGES))]
    props.setdefault("url", f"https://example.com{page}")
    return {
        "event_id": f"ev-{lead:x}-{seq:x}-{rng.getrandbits(32):08x}",
        "type": type_,
        "channel": channel,
        "occurred_at": rfc3339_ms(at_ms),
        "received_at": rfc3339_ms(received_ms),
        "anonymous_id": anon_id,
        "user_id": user_id,
        "email": email,
        "account_id": f"acct-{lead % 4999:05d}" if user_id else None,
        "source": "bench",
        "properties": props,
        "traits": traits,
        "context": {"ip": f"203.0.113.{lead % 250}", "library": "bench"},
    }


def to_record(event: dict[str, Any]) -> Record:
    key = event["user_id"] or event["anonymous_id"]
    return Record(event["channel"], str(key).encode(), orjson.dumps(event))


def lead_sequence(leads: int, seed: int, *, skew: bool = True) -> Iterator[int]:
    """Endless lead numbers: Zipf–Mandelbrot distributed, or round robin when skew=False."""
    if not skew:
        yield from itertools.cycle(range(leads))
    rng = random.Random(seed)
    cum = list(itertools.accumulate(1.0 / (r + ZIPF_Q) ** ZIPF_S for r in range(1, leads + 1)))
    # Ranks are shuffled onto lead numbers so that hot leads spread over all partitions.
    perm = list(range(leads))
    random.Random(seed + 1).shuffle(perm)
    total = cum[-1]
    while True:
        yield perm[bisect.bisect_left(cum, rng.random() * total)]


def generate(events: int, leads: int, seed: int = 42, *, skew: bool = True) -> Iterator[Record]:
    """`events` records over `leads` leads in event-time order, spread over SPAN of event time.

    skew=True draws leads Zipf–Mandelbrot distributed (throughput, latency); skew=False visits
    lead i at record i % leads so that every lead appears (memory per lead, restart state).
    """
    rng = random.Random(seed + 2)
    seen: dict[int, int] = {}
    start_ms = int(START.timestamp() * 1000)
    step_ms = SPAN / timedelta(milliseconds=1) / max(events, 1)
    for i, lead in zip(range(events), lead_sequence(leads, seed, skew=skew), strict=False):
        seq = seen.get(lead, 0)
        seen[lead] = seq + 1
        at = start_ms + int(step_ms * i)
        yield to_record(make_event(rng, lead, seq, at, first=seq == 0, received_ms=at + 1000))


class LiveEvents:
    """Events stamped at send time (occurred_at = received_at = now) for the latency phase."""

    def __init__(self, leads: int, seed: int):
        self.rng = random.Random(seed + 2)
        self.leads = lead_sequence(leads, seed)
        self.seen: dict[int, int] = {}

    def next(self) -> Record:
        lead = next(self.leads)
        seq = self.seen.get(lead, 0)
        self.seen[lead] = seq + 1
        now = now_ms()
        return to_record(make_event(self.rng, lead, seq, now, first=seq == 0, received_ms=now))


def hand_raiser(tag: str) -> list[Record]:
    """A known decision maker who asks for a demo: one handoff at once (fast lane).

    Used as a readiness probe and as the restart marker: its handoff proves the worker
    consumes, scores and produces again.
    """
    now = rfc3339_ms(now_ms())
    base: dict[str, Any] = {
        "channel": "web",
        "occurred_at": now,
        "received_at": now,
        "anonymous_id": None,
        "user_id": f"marker-{tag}",
        "email": None,
        "account_id": None,
        "source": "bench",
        "properties": {},
        "context": {},
    }
    identify = {**base, "event_id": f"{tag}-1", "type": "identify", "traits": {"seniority": "vp"}}
    demo = {**base, "event_id": f"{tag}-2", "type": "sales.demo_requested", "traits": {}}
    return [to_record(identify), to_record(demo)]


def write_file(path: Path, records: Iterator[Record]) -> int:
    """JSON lines (the canonical event only: channel and key derive from it); the count."""
    count = 0
    with path.open("wb") as out:
        for record in records:
            out.write(record.value + b"\n")
            count += 1
    return count


def read_file(path: Path) -> Iterator[Record]:
    with path.open("rb") as lines:
        for line in lines:
            yield to_record(orjson.loads(line))


def topic_of(prefix: str, channel: str) -> str:
    """Same naming as `Topics.events` without building a Topics per record."""
    return f"{prefix}leads.events.{CHANNEL_TOPIC[channel]}"
