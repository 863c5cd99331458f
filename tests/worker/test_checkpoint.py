"""The batch worker's checkpoint, driven with fakes that write one journal: its order, what it
writes where, and what a failure at each step leaves behind."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import pytest
from aiokafka.errors import CommitFailedError, KafkaConnectionError

from stream.pipeline.core import Landing
from stream.pipeline.processor import Emit, Record
from stream.scoring import AccountState, LeadState, new_state
from stream.topics import Topics
from stream.worker.checkpoint import TP, Checkpoint, Positions, Staged
from stream.worker.outputs import Outgoing
from stream.worker.stores import Changes

TOPICS = Topics("t.", 4)
WEB = TOPICS.events("web")


class Journal(list[tuple[Any, ...]]):
    def steps(self) -> list[str]:
        return [entry[0] for entry in self]


class FakeProducer:
    def __init__(self, journal: Journal, fail: int = 0):
        self.journal = journal
        self.fail = fail
        self.ends: dict[TP, int] = {}

    async def produce(self, records: Sequence[Outgoing]) -> dict[TP, int]:
        kind = "changelog" if records[0].topic.endswith("-changelog") else "outputs"
        if self.fail:
            self.fail -= 1
            self.journal.append((f"{kind} failed",))
            raise KafkaConnectionError("broker away")
        last: dict[TP, int] = {}
        for r in records:
            where = (r.topic, r.partition if r.partition is not None else 0)
            self.ends[where] = self.ends.get(where, -1) + 1
            last[where] = self.ends[where]
        self.journal.append((kind, list(records)))
        return last


class FakeStores:
    def __init__(self, journal: Journal):
        self.journal = journal

    def write(self, partition: int, changes: Changes, offsets: Mapping[str, int]) -> None:
        self.journal.append(("store", partition, changes, dict(offsets)))


class FakeOffsets:
    def __init__(self, journal: Journal, refuse: bool = False):
        self.journal = journal
        self.refuse = refuse

    async def commit(self, offsets: Mapping[TP, int]) -> None:
        if self.refuse:
            self.journal.append(("commit refused",))
            raise CommitFailedError("rebalanced")
        self.journal.append(("commit", dict(offsets)))


class FakeSnapshots:
    def __init__(self, journal: Journal):
        self.journal = journal

    def mark(self, lead_id: str, state: LeadState) -> None:
        self.journal.append(("redis", "lead", lead_id))

    def mark_account(self, account: AccountState) -> None:
        self.journal.append(("redis", "account", account.account_id))

    def absorb(self, visitor_id: str, lead_id: str) -> None:
        self.journal.append(("redis", "absorb", visitor_id, lead_id))

    def add(self, emit: Emit) -> None:
        self.journal.append(("redis", "emit", len(emit.ledger)))


def record(offset: int, partition: int = 1, topic: str = WEB) -> Record:
    return Record(topic, partition, offset, b"u1", b"{}", [], 7)


def checkpoint(
    journal: Journal, staged: list[Staged], *, fail: int = 0, refuse: bool = False
) -> Checkpoint:
    def take() -> Staged:
        return staged.pop(0) if staged else Staged(Landing(), {})

    return Checkpoint(
        topics=TOPICS,
        producer=FakeProducer(journal, fail),
        stores=FakeStores(journal),
        offsets=FakeOffsets(journal, refuse),
        snapshots=FakeSnapshots(journal),
        take_staged=take,
        retry_seconds=0.0,
    )


def scored(lead_id: str, *done: Record) -> tuple[Emit, Landing]:
    """What the pipeline gives for a record that moved a lead: a handoff, a ledger entry, a
    by-lead hop, and the lead's new state staged."""
    emit = Emit(done=list(done))
    emit.handoffs.append((lead_id.encode(), b'{"to":"mql"}', [("ce_id", b"x")]))
    emit.ledger.append((lead_id.encode(), b'{"points":5}'))
    emit.by_lead.append((lead_id.encode(), {"control": "pull"}, [], 2))
    landing = Landing()
    landing.states[(1, lead_id)] = new_state(lead_id)
    landing.aliases[(1, "anon:c1")] = lead_id
    landing.absorbed.append(("anon:c1", lead_id))
    return emit, landing


async def test_commit_lands_outputs_then_changelog_then_stores_then_offsets_then_redis() -> None:
    journal = Journal()
    emit, landing = scored("u1", record(10))
    due = {"1:100": orjson.dumps(["u1"]).decode(), "1:99": None}
    accounts = {1: {"acme": AccountState("acme")}}
    cp = checkpoint(journal, [Staged(landing, due, accounts)])
    cp.positions.fetched((WEB, 1), 10)
    cp.add(emit)
    await cp.commit()

    assert journal.steps() == [
        "outputs",
        "changelog",
        "store",
        "commit",
        "redis",
        "redis",
        "redis",
        "redis",
    ]
    outputs = journal[0][1]
    assert [r.topic for r in outputs] == [TOPICS.handoff, TOPICS.by_lead, TOPICS.ledger]
    assert outputs[1].partition == 2  # a by-lead record goes to its lead's home
    # One changelog record per changed key, in the per-record path's format: raw state
    # bytes, JSON strings for aliases and the tick schedule (None deletes).
    changelog = {(r.topic, r.partition, r.key): r.value for r in journal[1][1]}
    state = new_state("u1").encode()
    assert changelog == {
        ("t.leadstream-worker-lead_state-changelog", 1, b"u1"): state,
        ("t.leadstream-worker-aliases-changelog", 1, b'"anon:c1"'): b'"u1"',
        ("t.leadstream-worker-tick_due-changelog", 1, b'"1:100"'): b'"[\\"u1\\"]"',
        ("t.leadstream-worker-tick_due-changelog", 1, b'"1:99"'): None,
        ("t.leadstream-worker-accounts-changelog", 1, b"acme"): AccountState("acme").encode(),
    }
    # The store gets the same bytes in one write, with the changelog offsets they reach.
    _, partition, changes, offsets = journal[2]
    assert partition == 1
    assert changes["lead_state"] == {b"u1": state}
    assert offsets == {"lead_state": 0, "aliases": 0, "tick_due": 1, "accounts": 0}
    assert journal[3] == ("commit", {(WEB, 1): 11})
    assert ("redis", "lead", "u1") in journal and ("redis", "absorb", "anon:c1", "u1") in journal
    assert ("redis", "account", "acme") in journal
    assert cp.produced_next == {2: 1}  # by-lead partition 2 now ends after our record
    assert not cp.pending()


async def test_a_failed_produce_is_repeated_and_nothing_is_stored_before_its_acks() -> None:
    journal = Journal()
    emit, landing = scored("u1", record(10))
    cp = checkpoint(journal, [Staged(landing, {})], fail=2)
    cp.positions.fetched((WEB, 1), 10)
    cp.add(emit)
    await cp.commit()
    assert journal.steps()[:5] == [
        "outputs failed",
        "outputs failed",
        "outputs",
        "changelog",
        "store",
    ]


async def test_a_failed_changelog_produce_stores_nothing_until_it_is_acknowledged() -> None:
    journal = Journal()
    emit, landing = scored("u1", record(10))
    cp = checkpoint(journal, [Staged(landing, {})])
    producer = cp.producer
    assert isinstance(producer, FakeProducer)
    original = producer.produce

    async def changelog_fails_once(records: Sequence[Outgoing]) -> dict[TP, int]:
        if records[0].topic.endswith("-changelog") and "changelog failed" not in journal.steps():
            journal.append(("changelog failed",))
            raise KafkaConnectionError("broker away")
        return await original(records)

    producer.produce = changelog_fails_once  # type: ignore[method-assign]
    cp.positions.fetched((WEB, 1), 10)
    cp.add(emit)
    await cp.commit()
    assert journal.steps()[:5] == ["outputs", "changelog failed", "changelog", "store", "commit"]


async def test_offsets_stop_at_the_first_record_not_finished() -> None:
    """A record held (for order, or behind a merge) keeps its partition's commit below it;
    records after it that were finished are read again after a crash, as no-ops."""
    journal = Journal()
    cp = checkpoint(journal, [])
    for offset in (10, 11, 12):
        cp.positions.fetched((WEB, 1), offset)
    cp.add(Emit(done=[record(10), record(12)]))  # 11 is held
    await cp.commit()
    cp.add(Emit(done=[record(11)]))
    await cp.commit()
    await cp.commit()  # nothing moved: nothing to commit
    commits = [entry[1] for entry in journal if entry[0] == "commit"]
    assert commits == [{(WEB, 1): 11}, {(WEB, 1): 13}]


async def test_a_refused_commit_keeps_the_offsets_uncommitted() -> None:
    journal = Journal()
    emit, landing = scored("u1", record(10))
    cp = checkpoint(journal, [Staged(landing, {})], refuse=True)
    cp.positions.fetched((WEB, 1), 10)
    cp.add(emit)
    await cp.commit()
    assert "commit refused" in journal.steps()
    assert cp.positions.committable() == {(WEB, 1): 11}  # the next checkpoint tries again


async def test_a_discarded_checkpoint_lands_nothing() -> None:
    """A lost assignment: the staged state is dropped with the outputs."""
    journal = Journal()
    emit, landing = scored("u1", record(10))
    staged = [Staged(landing, {})]
    cp = checkpoint(journal, staged)
    cp.positions.fetched((WEB, 1), 10)
    cp.add(emit)
    cp.discard()
    assert staged == []  # taken from the pipeline, thrown away
    assert journal == []
    assert not cp.emits and cp.records == 0


@pytest.mark.parametrize(
    ("fetched", "finished", "expected"),
    [
        ([5, 6, 7], [5, 6, 7], 8),
        ([5, 6, 7], [6, 7], 5),
        ([5, 6, 7], [5, 7], 6),
        ([], [], None),
    ],
)
def test_positions_commit_the_first_offset_not_finished(
    fetched: list[int], finished: list[int], expected: int | None
) -> None:
    positions = Positions()
    for offset in fetched:
        positions.fetched((WEB, 0), offset)
    for offset in finished:
        positions.finished((WEB, 0), offset)
    assert positions.committable().get((WEB, 0)) == expected
