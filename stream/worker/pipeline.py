"""One worker step for every input record, in batches: identity, then scoring where possible.

Each record is processed once, in order, by one agent: a channel record passes the identity
step, and if its lead lives in the partition the record arrived in (its home key is the
record's key: a known lead keyed by its user id, a cookie visitor keyed by its anonymous id)
it is scored right there. Only records whose lead lives elsewhere (a cookie that identified as
a known lead, a hand-over, an email-only visitor) take the hop through `leads.events.by_lead`
and are scored when they come back. One pass through Faust instead of two is most of the
worker's throughput (docs/benchmarks.md).

Table writes of a batch are staged: later records of the batch read them at once, but the
tables get them only after every record the batch produced has been acknowledged. If a state
write landed and its handoff did not, the repeated record would be a no-op (its offset is
below the lead's watermark) and the handoff would be lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stream.scoring import LeadState
from stream.scoring.identity import home_key
from stream.worker.processor import Emit, IdentityStep, Record, ScoringStep, channel_source


@dataclass
class Staged:
    """What a batch writes to the tables, with the partition each write belongs to."""

    states: dict[str, tuple[LeadState | None, int]] = field(default_factory=dict)
    aliases: dict[str, tuple[str, int]] = field(default_factory=dict)
    absorbed: list[tuple[str, str]] = field(default_factory=list)  # (visitor, lead) handed over


class Pipeline:
    """Channel and by-lead records → emits, with the batch's table writes staged."""

    def __init__(self, identity: IdentityStep, scoring: ScoringStep, by_lead_topic: str):
        self.identity = identity
        self.scoring = scoring
        self.by_lead_topic = by_lead_topic
        # The values wait in the steps' `pending` (where later records read them); here only
        # which partition each write belongs to, and the hand-overs.
        self.state_partitions: dict[str, int] = {}
        self.alias_partitions: dict[str, int] = {}
        self.absorbed: list[tuple[str, str]] = []

    def process(self, record: Record) -> Emit:
        if record.topic == self.by_lead_topic:
            emit = self.scoring.process(record)
        else:
            emit = self.identity.process(record)
            self._stage_aliases(emit, record.partition)
            local = self._at_home(record, emit)
            if local is not None:
                emit.extend(self.scoring.process(local))
        self._stage_states(emit, record.partition)
        return emit

    def _at_home(self, record: Record, emit: Emit) -> Record | None:
        """The by-lead record to score here and now, taken out of `emit`, if its lead lives in
        this partition (one record only: two would share one watermark position)."""
        if len(emit.by_lead) != 1 or record.key is None:
            return None
        key, body, headers = emit.by_lead[0]
        if home_key(key.decode()).encode() != record.key:
            return None
        emit.by_lead.clear()
        source = channel_source(record.topic, record.partition)
        return Record(
            record.topic, record.partition, record.offset, key, record.value, headers, source, body
        )

    def _stage_aliases(self, emit: Emit, partition: int) -> None:
        for key, lead_id in emit.aliases.items():
            self.identity.pending[key] = lead_id
            self.alias_partitions[key] = partition

    def _stage_states(self, emit: Emit, partition: int) -> None:
        if emit.forget is not None:
            visitor_id, _lead_id = emit.forget
            self.scoring.pending[visitor_id] = None
            self.state_partitions[visitor_id] = partition
            self.absorbed.append(emit.forget)
        for lead_id, state in emit.states.items():
            self.scoring.pending[lead_id] = state
            self.state_partitions[lead_id] = partition

    def take_staged(self) -> Staged:
        """The batch's writes, for the tables; reads go to the tables again from now on."""
        staged = Staged(
            {k: (self.scoring.pending[k], p) for k, p in self.state_partitions.items()},
            {k: (self.identity.pending[k], p) for k, p in self.alias_partitions.items()},
            self.absorbed,
        )
        self.state_partitions, self.alias_partitions, self.absorbed = {}, {}, []
        self.identity.pending.clear()
        self.scoring.pending.clear()
        return staged
