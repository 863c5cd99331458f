"""What the worker does with one record, apart from Faust: decode, resolve, call the engine.

Faust hands records in; this module decides what to write where and returns it as plain
values (`Emit`), so the Faust agents stay a few lines each and the logic is testable alone.
"""

from __future__ import annotations

import base64
import logging
import time
import uuid
import zlib
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from stream import metrics
from stream.deadletter import Headers, deadletter_headers
from stream.scoring import (
    Event,
    LeadState,
    Model,
    Outcome,
    apply,
    contact_update,
    merge_states,
    new_state,
    next_tick_at,
    snapshot,
    tick,
)
from stream.scoring.account import AccountState, AccountUpdate, ContactUpdate, update_account
from stream.scoring.events import format_us, t_to_us, us_to_t
from stream.scoring.identity import Resolution, resolve
from stream.worker.handoff import CE_NAMESPACE, handoff_record
from stream.worker.ticks import TickScheduler

log = logging.getLogger("leadstream.worker")
# Label children looked up once: `.labels()` per event was 2 % of the worker's time.
SCORING_SECONDS = metrics.PROCESSING_DURATION.labels(agent="scoring")
APPLIED = metrics.EVENTS_PROCESSED.labels(outcome="applied")
DUPLICATE = metrics.EVENTS_PROCESSED.labels(outcome="duplicate")


@dataclass
class Record:
    """One consumed Kafka record, as Faust gives it to an agent."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers
    # Which watermark of the lead's state the offset belongs to: the partition for by-lead
    # records, a channel topic's own id (`channel_source`) for events scored where they arrive.
    source: int | None = None
    # An event scored where it arrived comes parsed (with its lead id); `value` stays the
    # channel record's own bytes, which a dead letter keeps.
    body: dict[str, Any] | None = None

    @property
    def position(self) -> tuple[int, int]:
        return (self.partition if self.source is None else self.source, self.offset)


def channel_source(topic: str, partition: int) -> int:
    """A watermark id for a channel topic's partition, apart from the by-lead partitions
    (0..n-1): stable across restarts and channel lists, as it comes from the topic's name."""
    return (zlib.crc32(topic.encode()) + 1) * 100_000 + partition


@dataclass
class Emit:
    """Records to produce, in order. `wait` ones must be acknowledged before the state write."""

    # (key, body, headers): bodies are serialised when produced, or scored in place unparsed
    by_lead: list[tuple[bytes, dict[str, Any], Headers]] = field(default_factory=list)
    channel: list[tuple[str, bytes, bytes]] = field(default_factory=list)  # (channel, key, value)
    handoffs: list[tuple[bytes, bytes, Headers]] = field(default_factory=list)
    ledger: list[tuple[bytes, bytes]] = field(default_factory=list)
    deadletters: list[tuple[bytes | None, bytes, Headers]] = field(default_factory=list)
    # (visitor lead, known lead): the visitor's state moved on (drop it once sends are acked)
    forget: tuple[str, str] | None = None
    states: dict[str, LeadState] = field(default_factory=dict)  # to store once sends are acked
    aliases: dict[str, str] = field(default_factory=dict)  # alias table writes, likewise
    accounts: list[tuple[bytes, bytes]] = field(default_factory=list)  # contact updates
    account_events: list[tuple[bytes, bytes, Headers]] = field(default_factory=list)

    def extend(self, other: Emit) -> None:
        """Append another step's emit for the same record, keeping each list's order."""
        self.by_lead += other.by_lead
        self.channel += other.channel
        self.handoffs += other.handoffs
        self.ledger += other.ledger
        self.deadletters += other.deadletters
        self.forget = other.forget or self.forget
        self.states.update(other.states)
        self.aliases.update(other.aliases)
        self.accounts += other.accounts
        self.account_events += other.account_events


def _dead(
    record: Record, reason: str, stage: str, error: str
) -> tuple[bytes | None, bytes, Headers]:
    metrics.DEAD_LETTERS.labels(stage=stage, reason=reason).inc()
    return (
        record.key,
        record.value,
        deadletter_headers(
            reason,
            stage,
            error,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        ),
    )


def _header(record: Record, name: str) -> str | None:
    for key, value in record.headers:
        if key == name:
            return value.decode("utf-8", "replace")
    return None


class IdentityStep:
    """Channel topics → `leads.events.by_lead`, keyed by the resolved lead id."""

    def __init__(self, aliases: MutableMapping[str, str]):
        self.aliases = aliases
        self.pending: dict[str, str] = {}  # this batch's alias writes, not yet in the table

    def lookup(self, key: str) -> str | None:
        found = self.pending.get(key)
        return found if found is not None else self.aliases.get(key)

    def process(self, record: Record) -> Emit:
        try:
            return self._process(record)
        except Exception as exc:  # noqa: BLE001 - one bad record must never stop the partition
            reason = getattr(exc, "reason", "processing_error")
            if isinstance(exc, orjson.JSONDecodeError):
                reason = "invalid_json"
            elif isinstance(exc, (TypeError, ValueError)):
                reason = "schema_violation"
            emit = Emit()
            emit.deadletters.append(_dead(record, reason, "identity", str(exc)))
            return emit

    def _process(self, record: Record) -> Emit:
        emit = Emit()
        event = orjson.loads(record.value)
        if not isinstance(event, dict):
            raise TypeError("a canonical event must be a JSON object")
        found: Resolution = resolve(event, self.lookup)
        emit.aliases.update(found.alias_writes)
        if found.email_alias is not None:
            email, lead = found.email_alias
            alias = {
                "type": "identity.alias",
                "email": email,
                "lead_id": lead,
                "event_id": f"alias:{event.get('event_id')}",
            }
            emit.channel.append(("crm", email.strip().lower().encode(), orjson.dumps(alias)))
        if event.get("type") == "identity.alias":
            if found.handover_from is None:
                return emit  # the alias is recorded; nothing to score
            event = {**event, "type": "identify"}
        received = _header(record, "received_at") or str(event.get("received_at") or "")
        headers: Headers = [("received_at", received.encode())] if received else []
        if found.conflict_with is not None:
            metrics.IDENTITY_MERGES.labels(kind="conflict").inc()
            log.warning("identity conflict: an anonymous id already belongs to another lead")
            conflict: dict[str, Any] = {
                **event,
                "event_id": f"conflict:{event.get('event_id')}",
                "type": "identity.conflict",
                "properties": {"other_lead_id": found.conflict_with},
            }
            emit.by_lead.append(
                (
                    found.lead_id.encode(),
                    {**conflict, "lead_id": found.lead_id},
                    headers,
                )
            )
        event["lead_id"] = found.lead_id
        if found.via is not None:
            forward = {"control": "forward", "to": found.lead_id, "event": event}
            emit.by_lead.append((found.via.encode(), forward, headers))
        elif found.handover_from is not None:
            # The visitor's partition hands its state over; the identify travels with it so
            # the merge happens at the identify instant, as one step.
            control: dict[str, Any] = {
                "control": "handover",
                "to": found.lead_id,
                "identify": event,
            }
            emit.by_lead.append((found.handover_from.encode(), control, headers))
        else:
            emit.by_lead.append((found.lead_id.encode(), event, headers))
        return emit


class ScoringStep:
    """`leads.events.by_lead` → engine → state, handoffs, ledger, dirty snapshots for Redis."""

    def __init__(
        self,
        states: MutableMapping[bytes, bytes],
        model: Model,
        ticks: TickScheduler,
        on_state: Callable[[str, LeadState], None],
    ):
        self.states = states
        self.model = model
        self.ticks = ticks
        self.on_state = on_state
        # This batch's states, not yet in the table (None: handed over and dropped).
        self.pending: dict[str, LeadState | None] = {}

    def load(self, lead_id: str) -> LeadState | None:
        if lead_id in self.pending:
            return self.pending[lead_id]
        raw = self.states.get(lead_id.encode())
        return None if raw is None else LeadState.decode(raw)

    def process(self, record: Record) -> Emit:
        """What to produce and which states to store for one by-lead record.

        Any error becomes a dead letter with its reason, and the partition goes on: an
        exception escaping a Faust agent would ack the record silently and restart the agent.
        """
        started = time.perf_counter()
        try:
            emit = self._process(record)
        except Exception as exc:  # noqa: BLE001 - one bad record must never stop the partition
            emit = Emit()
            self._dead_letter(record, exc, emit)
        SCORING_SECONDS.observe(time.perf_counter() - started)
        return emit

    def _process(self, record: Record) -> Emit:
        emit = Emit()
        body = record.body if record.body is not None else orjson.loads(record.value)
        if not isinstance(body, dict):
            raise TypeError("a by-lead record must be a JSON object")
        control = body.get("control")
        if control == "handover":
            return self._handover(record, body, emit)
        if control == "forward":
            # Behind a hand-over in this partition: on to the lead, in arrival order.
            target = str(body["to"]).encode()
            emit.by_lead.append((target, body["event"], record.headers))
            return emit
        if control == "clock":
            self._fire_ticks(record, t_to_us(float(body["t"])), emit)
            return emit
        if control == "merge":
            outcome = self._merge(record, body)
        else:
            event = Event.from_dict(body)
            lead_id = event.lead_id or (record.key or b"").decode()
            state = self.load(lead_id) or new_state(lead_id)
            outcome = apply(state, event, self.model, offset=record.position)
        self._collect(record, outcome, emit)
        if outcome.applied:
            APPLIED.inc()
            self._keep(record.partition, outcome.state, emit)
            self._fire_ticks(record, outcome.state.clock, emit)
        else:
            DUPLICATE.inc()
            # Stored again on purpose: after a SIGKILL the local RocksDB can be ahead of the
            # changelog (a write whose changelog record never left the process). The repeated
            # record is a no-op for the engine; writing the state re-sends its changelog
            # record, so a worker that restores this partition later gets it.
            emit.states[outcome.state.lead_id] = outcome.state
        return emit

    def _dead_letter(self, record: Record, exc: Exception, emit: Emit) -> None:
        reason = getattr(exc, "reason", None) or "processing_error"
        if isinstance(exc, orjson.JSONDecodeError):
            reason = "invalid_json"
        elif isinstance(exc, (TypeError, KeyError)):
            reason = "schema_violation"
        log.warning("dead-lettering a by-lead record: %s: %s", type(exc).__name__, exc)
        emit.deadletters.append(
            _dead(record, str(reason), "worker", f"{type(exc).__name__}: {exc}")
        )
        metrics.EVENTS_PROCESSED.labels(outcome="dead_letter").inc()

    def _keep(self, partition: int, state: LeadState, emit: Emit) -> None:
        emit.states[state.lead_id] = state
        self.on_state(state.lead_id, state)
        contact = contact_update(state, self.model)
        if contact is not None:
            emit.accounts.append((contact.account_id.encode(), orjson.dumps(contact.to_dict())))
        due = next_tick_at(state, self.model)
        if due is not None:
            self.ticks.schedule(partition, state.lead_id, due)

    def _fire_ticks(self, record: Record, clock_us: int | None, emit: Emit) -> None:
        """Leads on this partition whose tick instant stream time has now passed.

        The lead's clock is the largest event time it has applied, so the largest clock seen
        on a partition is the partition's stream time.
        """
        if clock_us is None:
            return
        for instant, lead_ids in self.ticks.advance(record.partition, us_to_t(clock_us)):
            for lead_id in lead_ids:
                state = emit.states.get(lead_id) or self.load(lead_id)
                if state is None:
                    continue
                outcome = tick(state, instant, self.model)
                self._collect(record, outcome, emit)
                self._keep(record.partition, outcome.state, emit)

    def _collect(self, record: Record, outcome: Outcome, emit: Emit) -> None:
        received = _header(record, "received_at")
        for tr in outcome.transitions:
            emit.handoffs.append(handoff_record(tr, received))
            metrics.TRANSITIONS.labels(
                from_stage=tr.from_stage, to_stage=tr.to_stage, reason=tr.reason
            ).inc()
        for entry in outcome.ledger:
            emit.ledger.append((entry.lead_id.encode(), orjson.dumps(entry.to_dict())))

    def _handover(self, record: Record, body: dict[str, Any], emit: Emit) -> Emit:
        """At the visitor's partition: ship its state to the known lead's partition."""
        visitor_id = (record.key or b"").decode()
        state = self.load(visitor_id)
        merge = {
            "control": "merge",
            "from": visitor_id,
            "to": body["to"],
            "state": base64.b64encode(state.encode()).decode() if state is not None else None,
            "identify": body["identify"],
        }
        emit.by_lead.append((str(body["to"]).encode(), merge, record.headers))
        emit.forget = (visitor_id, str(body["to"])) if state is not None else None
        metrics.IDENTITY_MERGES.labels(kind="handover").inc()
        return emit

    def _merge(self, record: Record, body: dict[str, Any]) -> Outcome:
        lead_id = str(body["to"])
        identify = Event.from_dict({**body["identify"], "lead_id": lead_id})
        known = self.load(lead_id) or new_state(lead_id)
        offset = record.position
        if body.get("state") is None:
            return apply(known, identify, self.model, offset=offset)
        visitor = LeadState.decode(base64.b64decode(body["state"]))
        metrics.IDENTITY_MERGES.labels(kind="merge").inc()
        return merge_states(known, visitor, identify, self.model, offset=offset)

    def snapshot(self, state: LeadState) -> dict[str, Any]:
        return snapshot(state, self.model)


class AccountStep:
    """`leads.accounts` → account rollup and MQA, one account per key (section 8).

    Each contact update carries the lead's engagement at its own clock; the account keeps the
    latest value per contact, so the rollup is incremental and a repeated update is a no-op.
    """

    def __init__(self, accounts: MutableMapping[bytes, bytes], model: Model):
        self.accounts = accounts
        self.model = model

    def process(self, record: Record) -> tuple[Emit, AccountState | None]:
        emit = Emit()
        try:
            contact = ContactUpdate.from_dict(orjson.loads(record.value))
            raw = self.accounts.get(contact.account_id.encode())
            account = AccountState(contact.account_id) if raw is None else AccountState.decode(raw)
            was_mqa = account.mqa
            update = update_account(
                account, contact.lead_id, contact.engagement, contact.fit_company, self.model
            )
        except Exception as exc:  # noqa: BLE001 - one bad record must never stop the partition
            emit.deadletters.append(_dead(record, "processing_error", "accounts", str(exc)))
            return emit, None
        if update.mqa != was_mqa:  # reached, or lost as engagement decayed
            emit.account_events.append(account_event(update, contact))
        return emit, update.account


def account_event(update: AccountUpdate, contact: ContactUpdate) -> tuple[bytes, bytes, Headers]:
    """`leadstream.account.mqa_changed.v1` (CloudEvents binary mode), keyed by account id."""
    account_id = update.account.account_id
    data = {
        "account_id": account_id,
        "mqa": update.mqa,
        "engagement": update.engagement,
        "fit": update.account.fit,
        "contacts": len(update.account.contacts),
        "trigger_lead_id": contact.lead_id,
        "at": format_us(contact.at_us),
    }
    ce = {
        "ce_specversion": "1.0",
        "ce_id": str(
            uuid.uuid5(CE_NAMESPACE, f"account:{account_id}:{contact.at_us}:{update.mqa}")
        ),
        "ce_source": "leadstream/worker",
        "ce_type": "leadstream.account.mqa_changed.v1",
        "ce_subject": f"account/{account_id}",
        "ce_time": format_us(contact.at_us),
        "content-type": "application/json",
    }
    return account_id.encode(), orjson.dumps(data), [(k, v.encode()) for k, v in ce.items()]
