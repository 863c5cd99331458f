"""By-lead records the Faust-based worker of earlier releases wrote to run its timers (`wake`,
`clock`) may still sit in the topic after an upgrade: each is finished without effect, an
unknown control is still a dead letter."""

from __future__ import annotations

import orjson

from stream.pipeline.processor import Record
from stream.pipeline.replay import BY_LEAD, replay_pipeline
from stream.scoring import LeadState, default_model


def _by_lead(offset: int, body: dict[str, object]) -> Record:
    return Record(BY_LEAD, 0, offset, b"__wake__", orjson.dumps(body), [])


def test_wake_and_clock_records_are_finished_without_effect() -> None:
    leads: dict[str, LeadState] = {}
    pipeline = replay_pipeline(default_model(), leads)
    for offset, body in enumerate([{"control": "wake"}, {"control": "clock", "t": 20_000.5}]):
        record = _by_lead(offset, body)
        emit = pipeline.process(record)
        assert emit.done == [record]
        assert not emit.deadletters and not emit.handoffs and not emit.by_lead
    assert leads == {}


def test_an_unknown_control_is_a_dead_letter_with_its_reason() -> None:
    pipeline = replay_pipeline(default_model(), {})
    record = _by_lead(7, {"control": "tock"})
    emit = pipeline.process(record)
    assert emit.done == [record]
    [(_key, _value, headers)] = emit.deadletters
    assert b"unknown by-lead record control 'tock'" in dict(headers)["error"]


def test_a_pull_without_its_fields_is_finished_once_as_a_dead_letter() -> None:
    pipeline = replay_pipeline(default_model(), {})
    record = _by_lead(8, {"control": "pull", "to": "u1"})  # no kind, value, merge
    emit = pipeline.process(record)
    assert emit.done == [record] and len(emit.deadletters) == 1
