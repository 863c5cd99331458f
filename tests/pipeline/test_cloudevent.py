"""One CloudEvent header builder for handoffs and account events: same attributes, stable ids."""

from __future__ import annotations

import uuid

import orjson

from stream.pipeline.cloudevent import binary_headers
from stream.pipeline.handoff import ce_id, handoff_record
from stream.pipeline.processor import AccountStep, Record
from stream.scoring import ContactUpdate, default_model
from tests.pipeline.test_handoff import TRANSITION

REQUIRED = ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_subject", "ce_time"]
NAMESPACE = uuid.UUID("6f1b7a52-3c1e-4b7e-9a43-5d1f0c2a8e11")  # published ids depend on it


def names(headers: list[tuple[str, bytes]]) -> list[str]:
    return [k for k, _ in headers]


def test_required_attributes_first_and_empty_extensions_left_out() -> None:
    headers = binary_headers(
        ce_id="x", ce_type="t.v1", subject="s", time="2026-01-01T00:00:00Z",
        extensions={"route": "", "priority": "P1"},
    )  # fmt: skip
    assert names(headers) == [*REQUIRED, "content-type", "ce_priority"]
    assert dict(headers)["ce_source"] == b"leadstream/worker"


def test_handoff_ids_are_what_they_always_were() -> None:
    assert ce_id("L1", 7) == str(uuid.uuid5(NAMESPACE, "L1:7"))
    _, _, headers = handoff_record(TRANSITION, received_at="2026-01-01T00:00:00.000Z")
    assert names(headers)[:6] == REQUIRED
    assert dict(headers)["ce_receivedat"] == b"2026-01-01T00:00:00.000Z"


def test_account_event_has_the_same_attributes_and_a_stable_id() -> None:
    table: dict[bytes, bytes] = {}
    step = AccountStep(table, default_model())
    at = 1_800_000_000_000_000
    events = []
    for n, value in enumerate([25, 20, 12, 4, 30]):
        body = ContactUpdate("acme", f"c{n}", value, 45.0, at).to_dict()
        emit, account = step.process(
            Record("leads.accounts", 0, n, b"acme", orjson.dumps(body), [])
        )
        assert account is not None
        table[b"acme"] = account.encode()
        events.extend(emit.account_events)
    (key, _, headers) = events[0]
    assert key == b"acme"
    assert names(headers) == [*REQUIRED, "content-type"]
    expected = str(uuid.uuid5(NAMESPACE, f"account:acme:{at}:True"))
    assert dict(headers)["ce_id"] == expected.encode()
    assert dict(headers)["ce_type"] == b"leadstream.account.mqa_changed.v1"
