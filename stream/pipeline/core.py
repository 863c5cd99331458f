"""The worker's pipeline for every input record: identity, merges, scoring. No Kafka.

The worker's consume loop (`stream/worker/loop.py`) and `leadstream replay`
(`stream/pipeline/replay.py`) both drive this class, so replay of the channel topics equals
the live worker by construction.

A channel record arrives in the home partition of the person it belongs to (the collector
keys it so, `stream/collector/directory.py`). The identity step decides its lead
(`stream.scoring.identity`); if the lead lives here the event is scored at once, otherwise it
is forwarded through `leads.events.by_lead` to the lead's home partition.

When an event first ties a user id to a visitor that lives in another partition, the visitor's
history must join the lead before the event applies (scoring-model.md section 6). The lead's
home then *pulls* it: a `pull` record goes to the visitor's home partition, which answers with
a `merged` record carrying the visitor's state (and points the visitor's alias at the lead).
Until every answer is in, the lead has a pending merge (in the `merges` table, so it survives
a restart) and every later record of that lead in this partition is *parked*: held, in order,
unacknowledged, and processed right after the merge. A merge that waits longer than
`merge_timeout` (seconds) is completed with what arrived; a late answer still joins the lead
when it comes. Nothing is dropped.

Records produced by one record are returned as an `Emit`; table writes are staged
(`stream/pipeline/staging.py`) until the batch has landed.
"""

from __future__ import annotations

import base64
import functools
import logging
import time
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from stream import metrics
from stream.deadletters.record import Headers
from stream.pipeline.handoff import handoff_record
from stream.pipeline.processor import Emit, Record, dead_letter, header
from stream.pipeline.shadow import SHADOW_KEY, Shadow, is_shadow
from stream.pipeline.shadow import count as count_by_model
from stream.pipeline.staging import Staged
from stream.pipeline.states import EncodedStates, MemoryStates
from stream.pipeline.ticks import TickScheduler
from stream.scoring import (
    Event,
    LeadState,
    Model,
    Outcome,
    apply,
    apply_joining,
    catch_up,
    contact_update,
    new_state,
    next_tick_at,
    snapshot,
)
from stream.scoring.events import EventError, parse_time
from stream.scoring.identity import Identity, Pull, Resolution, is_visitor
from stream.scoring.state import seen_before

log = logging.getLogger("leadstream.worker")
SCORING_SECONDS = metrics.PROCESSING_DURATION.labels(agent="scoring")
APPLIED = metrics.EVENTS_PROCESSED.labels(outcome="applied")
DUPLICATE = metrics.EVENTS_PROCESSED.labels(outcome="duplicate")
PARKED = metrics.EVENTS_PROCESSED.labels(outcome="parked")
MAX_HOPS = 3  # a forwarded event that would travel further is dead-lettered (a routing loop)


@dataclass
class Tables:
    """The worker's tables as the pipeline sees them: by partition (see `Staged`)."""

    aliases: Callable[[int], MutableMapping[str, str]]
    states: Callable[[int], MutableMapping[bytes, bytes]]
    merges: Callable[[int], MutableMapping[str, str]]
    memory: dict[str, LeadState] | None = None
    """States as objects by lead id, never encoded (replay): used instead of `states`."""


@dataclass
class Landing:
    """What a batch writes to the tables, by (partition, key), and the visitors handed over."""

    states: dict[tuple[int, str], LeadState | None] = field(default_factory=dict)
    aliases: dict[tuple[int, str], str | None] = field(default_factory=dict)
    merges: dict[tuple[int, str], str | None] = field(default_factory=dict)
    absorbed: list[tuple[str, str]] = field(default_factory=list)  # (visitor, lead)


class Pipeline:
    """Input records → emits, with the batch's table writes staged."""

    def __init__(
        self,
        tables: Tables,
        model: Model,
        identity: Identity,
        ticks: TickScheduler,
        by_lead_topic: str,
        *,
        merge_timeout: float = 30.0,
        on_state: Callable[[str, LeadState], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        trust_lead_ids: bool = False,
        observe_latency: bool = False,
        state_cache: int = 50_000,
        records: bool = True,
        shadow_model: Model | None = None,
    ):
        self.model = model
        self.identity = identity
        self.ticks = ticks
        self.by_lead_topic = by_lead_topic
        self.merge_timeout = merge_timeout
        self.on_state = on_state
        self.clock = clock
        # Replay files may name a line's lead outright (`lead_id`); the public topics never.
        self.trust_lead_ids = trust_lead_ids
        # Receipt → score latency, for a live worker (a replay's receipts are history).
        self.observe_latency = observe_latency
        # Build the records a worker produces (handoffs, ledger entries, contact updates) and
        # count what happens in metrics; replay and the reports read transitions only.
        self.records = records
        self.transition_counters: dict[tuple[str, str, str], Any] = {}
        self.lookups: dict[int, Callable[[str], str | None]] = {}
        self.aliases: Staged[str, str] = Staged(tables.aliases)
        self.states: EncodedStates | MemoryStates = (
            MemoryStates(tables.memory)
            if tables.memory is not None
            else EncodedStates(tables.states, state_cache)
        )
        self.merges: Staged[str, str] = Staged(tables.merges)
        # LEADSTREAM_SHADOW_MODEL: a candidate scored beside the live one (worker/shadow.py)
        self.shadow = Shadow(shadow_model, self.states, ticks, records) if shadow_model else None
        self.absorbed: list[tuple[str, str]] = []
        # (partition, lead) -> records held behind its pending merge, in arrival order
        self.parked: dict[tuple[int, str], list[Record]] = {}
        self.waiting_since: dict[tuple[int, str], float] = {}

    # -- entry points --------------------------------------------------------------------

    def process(self, record: Record) -> Emit:
        """One input record. `Emit.done` lists the records it finished (itself unless parked,
        and any parked records a completed merge released), for the caller to acknowledge."""
        emit = Emit()
        started = time.perf_counter() if self.records else 0.0
        try:
            if record.topic == self.by_lead_topic:
                self._by_lead(record, emit)
            else:
                self._channel(record, emit)
        except Exception as exc:  # noqa: BLE001 - one bad record must never stop the partition
            stage = "worker" if record.topic == self.by_lead_topic else "identity"
            emit.deadletters.append(dead_letter(record, exc, stage))
            if all(done is not record for done in emit.done):  # finished once, not twice
                emit.done.append(record)
        if self.records:
            SCORING_SECONDS.observe(time.perf_counter() - started)
        return emit

    def expire(self, partition: int) -> Emit:
        """Complete this partition's merges that waited longer than `merge_timeout`."""
        emit = Emit()
        now = self.clock()
        for where, since in list(self.waiting_since.items()):
            if where[0] == partition and now - since >= self.merge_timeout:
                pending = self._pending(*where)
                if pending is None:
                    self.waiting_since.pop(where, None)
                    continue
                metrics.MERGE_TIMEOUTS.inc()
                log.warning(
                    "a merge waited %.0fs for %d visitor history(ies) from other partitions: "
                    "applying the lead's held events now; the history joins when it arrives",
                    now - since,
                    len(pending["awaiting"]),
                )
                pending["awaiting"] = []  # answers still to come join late (`_late`)
                self._complete(where[0], where[1], pending, emit)
        return emit

    def advance_clock(self, partition: int, t_us: int) -> Emit:
        """Move the partition's stream time to `t_us` (the wall clock of an idle partition)
        and fire the timers it passes: what a `clock` by-lead record does, without a record."""
        emit = Emit()
        self._fire_ticks(Record("", partition, -1, None, b"", []), t_us, emit)
        return emit

    def overdue(self, partition: int) -> bool:
        """Whether a merge of this partition has waited past its timeout (see `expire`)."""
        now = self.clock()
        return any(
            p == partition and now - since >= self.merge_timeout
            for (p, _lead), since in self.waiting_since.items()
        )

    def forget_partitions(self, keep: Iterable[int]) -> None:
        """After a rebalance: parked records of partitions no longer ours are not acknowledged
        here; their new owner reads them again."""
        mine = set(keep)
        for where in list(self.parked):
            if where[0] not in mine:
                del self.parked[where]
                self.waiting_since.pop(where, None)
        self.states.forget(mine)
        self._gauges()

    def take_landing(self) -> Landing:
        """The batch's writes, for the caller to write to its tables. Written states stay
        decoded in the pipeline: a caller that does not write a landing (a dropped batch) must
        call `forget_partitions` before it processes more records of those partitions."""
        landing = Landing(
            self.states.take(),
            self.aliases.take(),
            self.merges.take(),
            self.absorbed,
        )
        self.absorbed = []
        return landing

    def write_landing(self, landing: Landing) -> None:
        """Apply a landing to plain tables (replay, tests); the worker's checkpoint writes
        its stores and changelogs instead."""
        self.states.write(landing.states)
        self.aliases.write(landing.aliases)
        self.merges.write(landing.merges)

    # -- channel records -----------------------------------------------------------------

    def _channel(self, record: Record, emit: Emit) -> None:
        body = record.body if record.body is not None else orjson.loads(record.value)
        if not isinstance(body, dict):
            raise TypeError("a canonical event must be a JSON object")
        if record.body is not None and "lead_id" in body:
            body = dict(body)  # popped below: a record held behind a merge comes again
        if body.get("type") == "identity.alias":
            # Written by workers before 0.2 to the public crm topic: the alias now travels as
            # a pull on the internal by-lead topic; the old record carries nothing to score.
            emit.done.append(record)
            return
        if (
            (self.records or self.observe_latency)
            and header(record, "received_at") is None
            and isinstance(body.get("received_at"), str)
        ):
            # Receipt time travels with everything this event causes (latency metrics).
            record.headers = [*record.headers, ("received_at", body["received_at"].encode())]
        lead_id = body.pop("lead_id", None)  # decided here, never taken from a public topic
        # Checked before any identity step: an invalid event changes nothing, not even aliases.
        event = record.event or Event.from_dict(body)
        if self.trust_lead_ids and isinstance(lead_id, str) and lead_id:
            self._at_home(record, body, Resolution(lead_id, record.partition), emit, event)
            return
        self._route(record, body, emit, 0, event)

    def _route(
        self,
        record: Record,
        body: dict[str, Any],
        emit: Emit,
        hops: int,
        event: Event | None = None,
    ) -> None:
        p = record.partition
        found = self.identity.resolve(body, p, self._alias_lookup(p))
        if found.home != p:
            # Decided where the lead lives: claims made here would strand a local visitor.
            self._forward(record, body, found.lead_id, found.home, emit, hops)
            return
        for key, lead_id in found.alias_writes.items():
            self.aliases.put(p, key, lead_id)
        self._at_home(record, body, found, emit, event)

    def _alias_lookup(self, p: int) -> Callable[[str], str | None]:
        """The alias table of partition `p` as the identity step reads it (one per partition,
        made once: it is asked for every record)."""
        lookup = self.lookups.get(p)
        if lookup is None:
            lookup = self.lookups[p] = functools.partial(self.aliases.get, p)
        return lookup

    def _forward(
        self,
        record: Record,
        body: dict[str, Any],
        lead_id: str,
        home: int,
        emit: Emit,
        hops: int,
    ) -> None:
        if hops >= MAX_HOPS:
            raise RoutingLoopError(f"event forwarded {hops} times without reaching its lead")
        forward = {"control": "event", "hops": hops + 1, "event": body}
        if not is_visitor(lead_id):
            forward["lead_id"] = lead_id  # a known lead: decided here, authoritative
        emit.by_lead.append((lead_id.encode(), forward, _carry(record), home))
        emit.done.append(record)

    def _at_home(
        self,
        record: Record,
        body: dict[str, Any],
        found: Resolution,
        emit: Emit,
        event: Event | None = None,
    ) -> None:
        p, lead_id = record.partition, found.lead_id
        if self._pending(p, lead_id) is not None:
            self._park(p, lead_id, record)
            return
        if found.pulls:
            self._start_merge(record, body, found, emit)
            return
        if not found.local_visitors and found.conflict_with is None:
            self._score(record, p, lead_id, event or Event.from_dict(body), emit)
            emit.done.append(record)
            return
        visitors = [self._hand_over(p, visitor, lead_id) for visitor in found.local_visitors]
        conflicts = [found.conflict_with] if found.conflict_with else []
        event = event or Event.from_dict(body)
        self._apply(record, record.position, lead_id, event, visitors, conflicts, emit)
        emit.done.append(record)

    # -- by-lead records -----------------------------------------------------------------

    def _by_lead(self, record: Record, emit: Emit) -> None:
        body = record.body if record.body is not None else orjson.loads(record.value)
        if not isinstance(body, dict):
            raise TypeError("a by-lead record must be a JSON object")
        control = body.get("control")
        if control == "event":
            self._forwarded(record, body, emit)
            return
        if control not in ("pull", "merged", "clock", "wake"):
            raise TypeError(f"unknown by-lead record control {control!r}")
        emit.done.append(record)
        if control == "pull":
            self._on_pull(record, body, emit)
        elif control == "merged":
            self._on_merged(record, body, emit)
        # `clock` and `wake` were written by the Faust path of earlier releases to run its
        # timers through the partition; the loop's own timers do that now: one left is done.

    def _forwarded(self, record: Record, body: dict[str, Any], emit: Emit) -> None:
        event = body["event"]
        if not isinstance(event, dict):
            raise TypeError("a forwarded event must be a JSON object")
        hops = int(body.get("hops", 1))
        lead_id = body.get("lead_id")
        if not isinstance(lead_id, str):
            self._route(record, event, emit, hops)
            return
        p = record.partition
        home = self.identity.home_of(lead_id)
        if home is not None and home != p:
            self._forward(record, event, lead_id, home, emit, hops)
            return
        found = Resolution(lead_id=lead_id, home=p)
        if not is_visitor(lead_id):
            # The event's own ids may tie more visitors to the lead (a cookie seen first here).
            found = self.identity.resolve({**event, "user_id": lead_id}, p, self._alias_lookup(p))
            for key, value in found.alias_writes.items():
                self.aliases.put(p, key, value)
        self._at_home(record, event, found, emit)

    def _on_pull(self, record: Record, body: dict[str, Any], emit: Emit) -> None:
        """At the visitor's home: hand its state to the lead, point its alias at the lead."""
        p = record.partition
        pull = Pull(str(body["kind"]), str(body["value"]), p)
        lead_id = str(body["to"])
        current = self.aliases.get(p, pull.alias)
        answer: dict[str, Any] = {
            "control": "merged",
            "merge": body["merge"],
            "to": lead_id,
            "identify": body["identify"],
            "state": None,
            "conflict": None,
        }
        if current is None or current == lead_id:
            self.aliases.put(p, pull.alias, lead_id)
        elif is_visitor(current):
            state = self._hand_over(p, current, lead_id)
            self.aliases.put(p, pull.alias, lead_id)
            if state is not None:
                answer["state"] = base64.b64encode(state.encode()).decode()
            if self.shadow is not None and (shadow := self.shadow.take_encoded(p, lead_id)):
                answer["shadow"] = shadow
        else:
            answer["conflict"] = current
        emit.by_lead.append((lead_id.encode(), answer, _carry(record), int(body["reply_to"])))

    def _on_merged(self, record: Record, body: dict[str, Any], emit: Emit) -> None:
        p, lead_id, merge_id = record.partition, str(body["to"]), str(body["merge"])
        pending = self._pending(p, lead_id)
        if pending is not None and merge_id in pending["awaiting"]:
            pending["awaiting"].remove(merge_id)
            pending.setdefault("done_ids", []).append(merge_id)
            if body.get("state"):
                pending["visitors"].append(body["state"])
            if body.get("conflict"):
                pending["conflicts"].append(body["conflict"])
            if body.get("shadow"):
                pending.setdefault("shadow", []).extend(body["shadow"])
            if pending["awaiting"]:
                self.merges.put(p, lead_id, orjson.dumps(pending).decode())
            else:
                self._complete(p, lead_id, pending, emit)
            return
        self._late(record, lead_id, merge_id, body, emit)

    def _late(
        self, record: Record, lead_id: str, merge_id: str, body: dict[str, Any], emit: Emit
    ) -> None:
        """An answer after its merge completed without it (timeout), or read again after a
        restart. A history joins once: the merge id is remembered in the lead's state."""
        p = record.partition
        known = self.states.get(p, lead_id)
        mark = f"merge:{merge_id}"
        if known is not None and seen_before(known, mark):
            return
        if not body.get("state") and not body.get("conflict"):
            return
        identify = Event.from_dict({**body["identify"], "event_id": mark})
        if self.shadow is not None:
            self.shadow.receive(p, lead_id, body.get("shadow") or ())
        visitors = [_decode_state(body["state"])] if body.get("state") else []
        conflicts = [str(body["conflict"])] if body.get("conflict") else []
        self._apply(record, None, lead_id, identify, visitors, conflicts, emit, merge_only=True)

    # -- merges --------------------------------------------------------------------------

    def _start_merge(
        self, record: Record, body: dict[str, Any], found: Resolution, emit: Emit
    ) -> None:
        p, lead_id = record.partition, found.lead_id
        event_id = str(body.get("event_id"))
        visitors = [self._hand_over(p, v, lead_id) for v in found.local_visitors]
        pending: dict[str, Any] = {
            "event": body,
            "position": list(record.position),
            "received_at": header(record, "received_at"),
            "awaiting": [],
            "visitors": [base64.b64encode(v.encode()).decode() for v in visitors if v],
            "conflicts": [found.conflict_with] if found.conflict_with else [],
        }
        if self.shadow is not None:
            pending["shadow"] = self.shadow.take_encoded(p, lead_id)
        identify = {**body, "type": "identify", "event_id": f"merge:{event_id}"}
        for pull in found.pulls:
            merge_id = f"{event_id}:{pull.kind}"
            pending["awaiting"].append(merge_id)
            ask = {
                "control": "pull",
                "merge": merge_id,
                "kind": pull.kind,
                "value": pull.value,
                "to": lead_id,
                "reply_to": p,
                "identify": identify,
            }
            emit.by_lead.append((pull.visitor_id.encode(), ask, _carry(record), pull.home))
        self.merges.put(p, lead_id, orjson.dumps(pending).decode())
        self.waiting_since[(p, lead_id)] = self.clock()
        emit.done.append(record)
        self._gauges()

    def _complete(self, p: int, lead_id: str, pending: dict[str, Any], emit: Emit) -> None:
        """Every answer is in (or the wait timed out): merge, apply the event, then release
        the lead's parked records, in order."""
        received = pending.get("received_at")
        origin = Record(
            "",
            p,
            -1,
            lead_id.encode(),
            b"",
            [("received_at", received.encode())] if received else [],
        )
        position = pending["position"]
        if self.shadow is not None:
            self.shadow.receive(p, lead_id, pending.get("shadow") or ())
        self._apply(
            origin,
            (int(position[0]), int(position[1])),
            lead_id,
            Event.from_dict(pending["event"]),
            [_decode_state(raw) for raw in pending["visitors"]],
            list(pending["conflicts"]),
            emit,
            merge_marks=[f"merge:{m}" for m in pending.get("done_ids", [])],
        )
        self.merges.delete(p, lead_id)
        self.waiting_since.pop((p, lead_id), None)
        held = self.parked.pop((p, lead_id), [])
        self._gauges()
        for parked in held:
            emit.extend(self.process(parked))

    def _pending(self, p: int, lead_id: str) -> dict[str, Any] | None:
        raw = self.merges.get(p, lead_id)
        if raw is None:
            return None
        pending: dict[str, Any] = orjson.loads(raw)
        if (p, lead_id) not in self.waiting_since:
            self.waiting_since[(p, lead_id)] = self.clock()  # read again after a restart
        return pending

    def _park(self, p: int, lead_id: str, record: Record) -> None:
        self.parked.setdefault((p, lead_id), []).append(record)
        PARKED.inc()
        self._gauges()

    def _hand_over(self, p: int, visitor_id: str, lead_id: str) -> LeadState | None:
        """A visitor of this partition leaves: its state goes with the caller, its snapshot
        and ledger join the lead's in Redis."""
        if self.shadow is not None:
            self.shadow.hand_over(p, visitor_id, lead_id)
        state = self.states.get(p, visitor_id)
        if state is None:
            return None
        self.states.delete(p, visitor_id)
        self.absorbed.append((visitor_id, lead_id))
        metrics.IDENTITY_MERGES.labels(kind="handover").inc()
        return state

    def _gauges(self) -> None:
        metrics.MERGES_WAITING.set(len(self.waiting_since))
        metrics.RECORDS_PARKED.set(sum(len(v) for v in self.parked.values()))

    # -- scoring -------------------------------------------------------------------------

    def _apply(
        self,
        record: Record,
        position: tuple[int, int] | None,
        lead_id: str,
        event: Event,
        visitors: Sequence[LeadState | None],
        conflicts: list[str],
        emit: Emit,
        *,
        merge_only: bool = False,
        merge_marks: Iterable[str] = (),
    ) -> None:
        """Merge visitors (if any) at the event's instant, then apply the event itself.

        An identify is the merge's own event; any other event that first ties a visitor to
        the lead (a track with both ids) is applied right after a merge at its instant.
        `merge_only`: a late history, with nothing to apply after it.
        """
        p = record.partition
        state = self.states.get(p, lead_id) or new_state(lead_id)
        joined = [v for v in visitors if v is not None] if visitors else []
        if joined:
            metrics.IDENTITY_MERGES.labels(kind="merge").inc()
        for _other in conflicts:
            metrics.IDENTITY_MERGES.labels(kind="conflict").inc()
            log.warning("identity conflict: an anonymous id already belongs to another lead")
        outcomes, applied = apply_joining(
            state,
            event,
            self.model,
            visitors=joined,
            conflicts=conflicts,
            position=position,
            merge_only=merge_only,
            merge_marks=merge_marks,
            explain=self.records,
        )
        for outcome in outcomes:
            self._collect(record, outcome, emit)
        if self.shadow is not None:
            self.shadow.apply(
                p,
                lead_id,
                event,
                position,
                emit,
                conflicts=conflicts,
                merge_only=merge_only,
                merge_marks=merge_marks,
            )
        self._applied(record, p, state, applied, emit)

    def _score(self, record: Record, p: int, lead_id: str, event: Event, emit: Emit) -> None:
        """`_apply` of an event that joins no visitor and meets no conflict (most events): the
        same steps without the ones that cannot apply."""
        state = self.states.get(p, lead_id) or new_state(lead_id)
        outcome = apply(state, event, self.model, offset=record.position, explain=self.records)
        self._collect(record, outcome, emit)
        if self.shadow is not None:
            self.shadow.apply(p, lead_id, event, record.position, emit)
        self._applied(record, p, state, outcome.applied, emit)

    def _applied(self, record: Record, p: int, state: LeadState, applied: bool, emit: Emit) -> None:
        """After a record's event: counted, its latency observed, the state kept, timers fired.
        Stored even when nothing changed: after a SIGKILL the local RocksDB can be ahead of
        the changelog; writing the state again re-sends its changelog record."""
        if self.records:
            (APPLIED if applied else DUPLICATE).inc()
        if applied and self.observe_latency:
            observe_since(header(record, "received_at"), metrics.EVENT_TO_SCORE)
        self._keep(p, state, emit)
        self._fire_ticks(record, state.clock, emit)

    def _keep(self, p: int, state: LeadState, emit: Emit) -> None:
        self.states.put(p, state.lead_id, state)
        if self.on_state is not None:
            self.on_state(state.lead_id, state)
        if self.records and state.account_id:
            contact = contact_update(state, self.model)
            if contact is not None:
                emit.accounts.append((contact.account_id.encode(), orjson.dumps(contact.to_dict())))
        if state.next_tick is not None or state.sla_due is not None:
            due = next_tick_at(state, self.model)
            if due is not None:
                self.ticks.schedule(p, state.lead_id, due)

    def _fire_ticks(self, record: Record, clock_us: int | None, emit: Emit) -> None:
        """Every lead of this partition whose timers the partition's stream time has passed,
        caught up at once however many timers are due (a lead idle for 30 days gets its 30
        ticks now). Stream time is the largest event time applied in the partition."""
        if clock_us is None:
            return
        p = record.partition
        now = clock_us / 86_400_000_000
        for _instant, lead_ids in self.ticks.advance(p, now):
            for lead_id in lead_ids:
                if self.shadow is not None and is_shadow(lead_id):
                    if self._pending(p, lead_id[len(SHADOW_KEY) :]) is None:
                        self.shadow.tick(p, lead_id, now, emit)
                    continue
                if self._pending(p, lead_id) is not None:
                    continue  # its timers fire when its held events apply
                state = self.states.get(p, lead_id)
                if state is None:
                    continue
                outcome = catch_up(state, now, self.model)
                self._collect(record, outcome, emit)
                self._keep(p, outcome.state, emit)

    def _collect(self, record: Record, outcome: Outcome, emit: Emit) -> None:
        emit.transitions += outcome.transitions
        if not self.records:
            return
        if outcome.transitions:
            received = header(record, "received_at")
            count_by_model("live", outcome.transitions)
            counters = self.transition_counters
            for tr in outcome.transitions:
                emit.handoffs.append(handoff_record(tr, received))
                labels = (tr.from_stage, tr.to_stage, tr.reason)
                counter = counters.get(labels)
                if counter is None:
                    counter = counters[labels] = metrics.TRANSITIONS.labels(*labels)
                counter.inc()
        dumps = orjson.dumps
        for entry in outcome.ledger:
            emit.ledger.append((entry.lead_id.encode(), dumps(entry.to_dict())))

    def snapshot(self, state: LeadState) -> dict[str, Any]:
        return snapshot(state, self.model)


class RoutingLoopError(Exception):
    reason = "identity_loop"


def observe_since(received_at: str | None, histogram: Any) -> None:
    """Seconds from the collector's receipt to now, when the receipt time is readable."""
    if not received_at:
        return
    try:
        received_us = parse_time(received_at, "received_at")
    except EventError:
        return
    histogram.observe(max(0.0, time.time() - received_us / 1_000_000))


def _decode_state(raw: str) -> LeadState:
    return LeadState.decode(base64.b64decode(raw))


def _carry(record: Record) -> Headers:
    """Headers a by-lead record keeps from the record it came from: receipt time for latency
    metrics, and the acceptance stamp that orders it among the partition's inputs."""
    return [(k, v) for k, v in record.headers if k in ("received_at", "accepted_at")]
