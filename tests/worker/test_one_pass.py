"""The worker's one pass: events scored where they arrive, the by-lead hop only when needed,
and a batch's table writes staged until its records have landed."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson

from stream.collector.segment import identity_key
from stream.scoring import LeadState, default_model
from stream.scoring.identity import home_key
from stream.scoring.state import seen_before
from stream.topics import partition_for
from stream.worker.pipeline import Pipeline
from stream.worker.processor import Emit, IdentityStep, Record, ScoringStep, channel_source
from stream.worker.ticks import TickScheduler

Body = dict[str, Any]
PARTITIONS = 4
BY_LEAD = "leads.events.by_lead"
WEB = "leads.events.web"
EMAIL = "leads.events.email"


def event(n: int, type_: str, *, anon: str | None = None, user: str | None = None) -> Body:
    return {
        "event_id": f"e{n}",
        "type": type_,
        "channel": "web",
        "occurred_at": f"2026-03-02T10:{n:02d}:00Z",
        "received_at": f"2026-03-02T10:{n:02d}:00Z",
        "anonymous_id": anon,
        "user_id": user,
        "email": None,
        "account_id": None,
        "source": "test",
        "properties": {},
        "traits": {"seniority": "vp", "employees": 500} if type_ == "identify" else {},
        "context": {},
    }


class Worker:
    """The pipeline over in-memory topics and tables, as the agent drives it."""

    def __init__(self) -> None:
        self.states: dict[bytes, bytes] = {}
        self.aliases: dict[str, str] = {}
        scoring = ScoringStep(self.states, default_model(), TickScheduler({}), lambda *_: None)
        self.pipeline = Pipeline(IdentityStep(self.aliases), scoring, BY_LEAD)
        self.offsets: dict[tuple[str, int], int] = defaultdict(int)
        self.hops: list[Record] = []  # every by-lead record produced

    def record(self, topic: str, key: bytes, value: bytes, partition: int) -> Record:
        offset = self.offsets[(topic, partition)]
        self.offsets[(topic, partition)] += 1
        return Record(topic, partition, offset, key, value, [])

    def channel(self, body: dict[str, Any], topic: str = WEB) -> Record:
        key = identity_key(body)
        return self.record(topic, key, orjson.dumps(body), partition_for(key, PARTITIONS))

    def batch(self, records: list[Record]) -> list[Emit]:
        """Process a batch and land it: produce its by-lead records, then write the tables."""
        emits = [self.pipeline.process(r) for r in records]
        staged = self.pipeline.take_staged()
        for lead_id, (state, _partition) in staged.states.items():
            if state is None:
                self.states.pop(lead_id.encode(), None)
            else:
                self.states[lead_id.encode()] = state.encode()
        self.aliases.update({k: v for k, (v, _p) in staged.aliases.items()})
        return emits

    def run(self, records: list[Record]) -> list[Emit]:
        """Batches until no by-lead record is left to come back."""
        emits: list[Emit] = []
        while records:
            done = self.batch(records)
            emits += done
            records = []
            for emit in done:
                for key, body, headers in emit.by_lead:
                    home = partition_for(home_key(key.decode()).encode(), PARTITIONS)
                    hop = self.record(BY_LEAD, key, orjson.dumps(body), home)
                    hop.headers = headers
                    self.hops.append(hop)
                    records.append(hop)
        return emits

    def state(self, lead_id: str) -> LeadState | None:
        raw = self.states.get(lead_id.encode())
        return None if raw is None else LeadState.decode(raw)


def test_known_and_anonymous_events_are_scored_where_they_arrive() -> None:
    w = Worker()
    last = w.channel(event(3, "web.page_view", anon="A1"))
    w.run([w.channel(event(1, "web.pricing_view", user="u1")), last])
    assert w.hops == []  # no record took the by-lead hop
    u1, visitor = w.state("u1"), w.state("anon:A1")
    assert u1 is not None and visitor is not None
    assert visitor.watermarks == {channel_source(WEB, last.partition): last.offset}


def test_an_identified_visitor_is_handed_over_and_later_cookie_events_follow() -> None:
    w = Worker()
    w.run([w.channel(event(1, "web.page_view", anon="A1"))])
    w.run([w.channel(event(2, "identify", anon="A1", user="u1"))])
    w.run([w.channel(event(3, "web.pricing_view", anon="A1"))])
    assert w.state("anon:A1") is None  # its history went to u1
    u1 = w.state("u1")
    assert u1 is not None and all(seen_before(u1, e) for e in ("e1", "e2", "e3"))
    # Hand-over to u1 (merge), and the forwarded pricing view: hops into u1's partition.
    assert [orjson.loads(r.value).get("control") for r in w.hops] == ["merge", None]
    home = partition_for(b"u1", PARTITIONS)
    assert {r.partition for r in w.hops} == {home}


def test_writes_are_staged_until_the_batch_lands_and_a_repeat_is_a_no_op() -> None:
    w = Worker()
    first = w.channel(event(1, "web.pricing_view", user="u1"))
    second = w.channel(event(2, "web.pricing_view", user="u1"))
    emits = [w.pipeline.process(first), w.pipeline.process(second)]
    assert w.states == {}  # nothing in the table before the batch has landed
    staged = w.pipeline.take_staged()
    state, partition = staged.states["u1"]
    assert state is not None and partition == first.partition
    assert seen_before(state, "e1") and seen_before(state, "e2")  # read the first's state
    assert all(e.ledger for e in emits)
    w.states[b"u1"] = state.encode()
    # The same records again (a crash before the offsets were committed): no-ops.
    again = w.batch([first, second])
    assert all(not e.ledger and not e.handoffs for e in again)


def test_channel_topics_keep_their_own_watermarks() -> None:
    """Offset 0 of the email topic is not offset 0 of the web topic."""
    w = Worker()
    w.run([w.channel(event(1, "web.pricing_view", user="u1"), WEB)])
    emits = w.run([w.channel(event(2, "email.click", user="u1"), EMAIL)])
    assert emits[0].ledger  # applied, not taken for a repeat of web offset 0
    u1 = w.state("u1")
    assert u1 is not None and len(u1.watermarks) == 2
