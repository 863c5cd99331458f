"""The worker's pipeline over several in-memory partitions, keyed as the collector keys.

Each partition has tables of its own, as Faust's stores do. By-lead records produced by one
record wait in `hops` until the test delivers them, so a test chooses when a pull or its
answer arrives relative to the person's next events.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any

import orjson

from stream.collector.directory import plan_keys
from stream.pipeline.core import Pipeline, Tables
from stream.pipeline.processor import Emit, Record, channel_source
from stream.pipeline.ticks import TickScheduler
from stream.scoring import LeadState, Model, Transition, default_model
from stream.scoring.identity import Identity
from stream.topics import partition_for

SECRET = "test-identity-secret"
BY_LEAD = "leads.events.by_lead"
WEB = "leads.events.web"
EMAIL = "leads.events.email"
CRM = "leads.events.crm"
_ids = itertools.count()


def event(
    type_: str,
    when: str,
    *,
    anon: str | None = None,
    user: str | None = None,
    email: str | None = None,
    traits: dict[str, Any] | None = None,
    properties: dict[str, Any] | None = None,
    channel: str = "web",
    eid: str | None = None,
) -> dict[str, Any]:
    return {
        "event_id": eid or f"e{next(_ids)}",
        "type": type_,
        "channel": channel,
        "occurred_at": when,
        "received_at": when,
        "anonymous_id": anon,
        "user_id": user,
        "email": email,
        "account_id": None,
        "source": "test",
        "properties": properties or {},
        "traits": traits or {},
        "context": {},
    }


def email_click(
    when: str, message_id: str, *, user: str | None = None, email: str | None = None
) -> dict[str, Any]:
    """A click an email webhook reports: by user id (a CRM contact) or by address only."""
    return event(
        "email.click",
        when,
        user=user,
        email=email,
        channel="email",
        properties={"message_id": message_id},
    )


VP = {"seniority": "vp", "employees": 800, "industry": "software", "country": "US"}


class Cluster:
    def __init__(
        self, partitions: int = 4, model: Model | None = None, shadow: Model | None = None
    ) -> None:
        self.partitions = partitions
        self.model = model or default_model()
        self.aliases: dict[int, dict[str, str]] = defaultdict(dict)
        self.states: dict[int, dict[bytes, bytes]] = defaultdict(dict)
        self.merges: dict[int, dict[str, str]] = defaultdict(dict)
        self.now = 0.0
        self.pipeline = Pipeline(
            Tables(lambda p: self.aliases[p], lambda p: self.states[p], lambda p: self.merges[p]),
            self.model,
            Identity(partitions, SECRET, partition_for),
            TickScheduler({}),
            BY_LEAD,
            merge_timeout=30.0,
            clock=lambda: self.now,
            shadow_model=shadow,
        )
        self.claims: dict[str, str] = {}  # the collector's directory
        self.offsets: dict[tuple[str, int], int] = defaultdict(int)
        self.hops: list[Record] = []
        self.accepted: list[bytes] = []  # channel records in acceptance order (for replay)
        self.transitions: list[Transition] = []
        self.dead: list[Any] = []
        self.ledger: list[dict[str, Any]] = []
        self.done: list[Record] = []
        self.shadow: list[tuple[bytes, bytes]] = []  # (key, value) written to leads.shadow
        self.handoffs: list[tuple[bytes, bytes]] = []  # (key, value) written to leads.handoff

    def _record(self, topic: str, partition: int, key: bytes, value: bytes) -> Record:
        offset = self.offsets[(topic, partition)]
        self.offsets[(topic, partition)] += 1
        source = None if topic == BY_LEAD else channel_source(topic, partition)
        return Record(topic, partition, offset, key, value, [], source)

    def send(
        self, body: dict[str, Any], topic: str = WEB, *, key_by_directory: bool = True
    ) -> None:
        """The collector accepts an event (keyed through its directory) and the worker reads it
        at once; by-lead records it produces wait in `hops`."""
        if key_by_directory:
            keys, claims = plan_keys([body], self.claims, SECRET)
            self.claims.update(claims)
            key = keys[0]
        else:
            key = body.get("anonymous_id") or body.get("user_id") or body["email"]
        value = orjson.dumps(body)
        self.accepted.append(value)
        record = self._record(
            topic, partition_for(key.encode(), self.partitions), key.encode(), value
        )
        return self._run(record)

    def _run(self, record: Record) -> Emit:
        emit = self.pipeline.process(record)
        self._land(emit)
        return emit

    def _land(self, emit: Emit) -> None:
        self.pipeline.write_landing(self.pipeline.take_landing())
        self.transitions += emit.transitions
        self.dead += emit.deadletters
        self.ledger += [orjson.loads(value) for _key, value in emit.ledger]
        self.done += emit.done
        self.shadow += [(key, value) for key, value, _headers in emit.shadow]
        self.handoffs += [(key, value) for key, value, _headers in emit.handoffs]
        for key, body, headers, home in emit.by_lead:
            record = self._record(BY_LEAD, home, key, orjson.dumps(body))
            record.headers = headers
            self.hops.append(record)

    def deliver(self, count: int | None = None) -> None:
        """Deliver waiting by-lead records (all, until none is left, by default)."""
        delivered = 0
        while self.hops and (count is None or delivered < count):
            self._run(self.hops.pop(0))
            delivered += 1

    def expire(self) -> None:
        for p in range(self.partitions):
            self._land(self.pipeline.expire(p))

    def state(self, lead_id: str) -> LeadState | None:
        for table in self.states.values():
            raw = table.get(lead_id.encode())
            if raw is not None:
                return LeadState.decode(raw)
        return None

    def leads(self) -> dict[str, LeadState]:
        return {
            k.decode(): LeadState.decode(v)
            for table in self.states.values()
            for k, v in table.items()
        }

    def moves(self, lead_id: str | None = None) -> list[tuple[str, str, str, str]]:
        return [
            (t.lead_id, t.from_stage, t.to_stage, t.reason)
            for t in self.transitions
            if lead_id is None or t.lead_id == lead_id
        ]
