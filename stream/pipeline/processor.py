"""The worker's records and what one step returns, apart from Kafka; the account step.

The consume loop hands records in; the pipeline (`stream/pipeline/core.py`) decides what to
write where and returns it as plain values (`Emit`), so the loop only moves records and the
logic is testable alone.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

from stream import metrics
from stream.deadletters.record import Headers, deadletter_headers
from stream.pipeline.cloudevent import binary_headers, event_id
from stream.scoring import Event, Model, Transition
from stream.scoring.account import AccountState, AccountUpdate, ContactUpdate, update_account
from stream.scoring.events import format_us

log = logging.getLogger("leadstream.worker")


@dataclass(slots=True)
class Record:
    """One consumed Kafka record, as the consume loop hands it over."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers
    # Which watermark of the lead's state the offset belongs to: the partition for by-lead
    # records, a channel topic's own id (`channel_source`) for channel records.
    source: int | None = None
    # A body that never left the process comes parsed (a by-lead record; a replay line);
    # `value` may then be empty.
    body: dict[str, Any] | None = None
    fetched_ms: int = 0  # when its partition was last fetched as it arrived (wall clock, ms)
    # The channel event already checked and built from `body` (replay reads each line once).
    event: Event | None = None

    @property
    def position(self) -> tuple[int, int]:
        return (self.partition if self.source is None else self.source, self.offset)


def channel_source(topic: str, partition: int) -> int:
    """A watermark id for a channel topic's partition, apart from the by-lead partitions
    (0..n-1): stable across restarts and channel lists, as it comes from the topic's name."""
    return (zlib.crc32(topic.encode()) + 1) * 100_000 + partition


@dataclass(init=False)
class Emit:
    """What records produced, in order, and which of them are finished.

    Its `__init__` is written out: one is made per record, and eight `default_factory` calls
    cost more than the lists.
    """

    # (key, body, headers, partition): bodies are serialised when produced
    by_lead: list[tuple[bytes, dict[str, Any], Headers, int]]
    handoffs: list[tuple[bytes, bytes, Headers]]
    transitions: list[Transition]  # the handoffs, as values
    ledger: list[tuple[bytes, bytes]]
    deadletters: list[tuple[bytes | None, bytes, Headers]]
    accounts: list[tuple[bytes, bytes]]  # contact updates
    account_events: list[tuple[bytes, bytes, Headers]]
    done: list[Record]  # input records finished (to acknowledge)
    shadow: list[tuple[bytes, bytes, Headers]]  # a shadow model's transitions (leads.shadow)

    def __init__(
        self,
        by_lead: list[tuple[bytes, dict[str, Any], Headers, int]] | None = None,
        handoffs: list[tuple[bytes, bytes, Headers]] | None = None,
        transitions: list[Transition] | None = None,
        ledger: list[tuple[bytes, bytes]] | None = None,
        deadletters: list[tuple[bytes | None, bytes, Headers]] | None = None,
        accounts: list[tuple[bytes, bytes]] | None = None,
        account_events: list[tuple[bytes, bytes, Headers]] | None = None,
        done: list[Record] | None = None,
    ) -> None:
        self.by_lead = [] if by_lead is None else by_lead
        self.handoffs = [] if handoffs is None else handoffs
        self.transitions = [] if transitions is None else transitions
        self.ledger = [] if ledger is None else ledger
        self.deadletters = [] if deadletters is None else deadletters
        self.accounts = [] if accounts is None else accounts
        self.account_events = [] if account_events is None else account_events
        self.done = [] if done is None else done
        self.shadow = []

    def extend(self, other: Emit) -> None:
        """Append another step's emit, keeping each list's order."""
        self.by_lead += other.by_lead
        self.handoffs += other.handoffs
        self.transitions += other.transitions
        self.ledger += other.ledger
        self.deadletters += other.deadletters
        self.accounts += other.accounts
        self.account_events += other.account_events
        self.done += other.done
        self.shadow += other.shadow


def dead_letter(record: Record, exc: Exception, stage: str) -> tuple[bytes | None, bytes, Headers]:
    """A record that cannot be processed, with its reason: the partition goes on."""
    reason = getattr(exc, "reason", None) or "processing_error"
    if isinstance(exc, orjson.JSONDecodeError):
        reason = "invalid_json"
    elif isinstance(exc, (TypeError, ValueError, KeyError)):
        reason = "schema_violation"
    log.warning("dead-lettering a record: %s: %s", type(exc).__name__, exc)
    metrics.EVENTS_PROCESSED.labels(outcome="dead_letter").inc()
    return _dead(record, str(reason), stage, f"{type(exc).__name__}: {exc}")


def _dead(
    record: Record, reason: str, stage: str, error: str
) -> tuple[bytes | None, bytes, Headers]:
    metrics.DEAD_LETTERS.labels(stage=stage, reason=reason).inc()
    value = record.value if record.value or record.body is None else orjson.dumps(record.body)
    return (
        record.key,
        value,
        deadletter_headers(
            reason,
            stage,
            error,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        ),
    )


def header(record: Record, name: str) -> str | None:
    for key, value in record.headers:
        if key == name:
            return value.decode("utf-8", "replace")
    return None


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
    headers = binary_headers(
        ce_id=event_id(f"account:{account_id}:{contact.at_us}:{update.mqa}"),
        ce_type="leadstream.account.mqa_changed.v1",
        subject=f"account/{account_id}",
        time=format_us(contact.at_us),
    )
    return account_id.encode(), orjson.dumps(data), headers
