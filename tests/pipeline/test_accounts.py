"""Account rollup in the worker: contact updates in, rollup and MQA changes out."""

from __future__ import annotations

import orjson

from stream.pipeline.processor import AccountStep, Record
from stream.scoring import ContactUpdate, contact_update, default_model, new_state
from stream.scoring.events import parse_time


def update(lead: str, engagement: float, fit: float | None = 45.0) -> Record:
    body = ContactUpdate("acme", lead, engagement, fit, 1_800_000_000_000_000).to_dict()
    return Record("leads.accounts", 0, 0, b"acme", orjson.dumps(body), [])


def feed(step: AccountStep, table: dict[bytes, bytes], record: Record) -> list[dict[str, object]]:
    emit, account = step.process(record)
    assert account is not None
    table[b"acme"] = account.encode()
    return [orjson.loads(value) for _, value, _ in emit.account_events]


def test_model_text_example_reaches_mqa_with_the_fifth_contact() -> None:
    # scoring-model.md section 8: 25, 20, 12, 4 -> 57 + 15 = 72, no MQA;
    # one more at 30 -> 75 + 20 = 95, MQA (account fit 45 >= 30, 4 contacts >= 10).
    table: dict[bytes, bytes] = {}
    step = AccountStep(table, default_model())
    for n, value in enumerate([25, 20, 12, 4]):
        assert feed(step, table, update(f"c{n}", value)) == []
    (event,) = feed(step, table, update("c4", 30))
    assert event["mqa"] is True and event["engagement"] == 95.0
    assert event["contacts"] == 5
    # a repeated update changes nothing, and emits nothing
    assert feed(step, table, update("c4", 30)) == []
    # engagement decays below the bar: MQA is lost, and said so
    (lost,) = feed(step, table, update("c4", 0))
    assert lost["mqa"] is False


def test_low_account_fit_never_mqa() -> None:
    table: dict[bytes, bytes] = {}
    step = AccountStep(table, default_model())
    for n in range(5):
        assert feed(step, table, update(f"c{n}", 60, fit=10.0)) == []


def test_bad_update_is_a_dead_letter() -> None:
    step = AccountStep({}, default_model())
    emit, account = step.process(Record("leads.accounts", 0, 7, b"x", b"{nope", []))
    assert account is None
    assert [h for h in emit.deadletters[0][2] if h[0] == "reason"] == [
        ("reason", b"processing_error")
    ]


def test_contact_update_needs_an_account_and_uses_company_traits() -> None:
    model = default_model()
    state = new_state("u1")
    assert contact_update(state, model) is None
    state.account_id = "acme"
    state.clock = parse_time("2026-03-02T09:00:00Z")
    state.profile = {"employees": 800, "industry": "software", "seniority": "vp"}
    contact = contact_update(state, model)
    assert contact is not None
    assert contact.fit_company == 20 + 15  # 201-1000 employees +20, primary industry +15
    state.profile = {"seniority": "vp"}  # nothing about the company: no fit to report
    assert contact_update(state, model).fit_company is None  # type: ignore[union-attr]
