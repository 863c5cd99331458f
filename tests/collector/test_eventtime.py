"""Event time: skew correction, client timestamps, future refusal, formatting."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from stream.collector.eventtime import format_time, occurred_at, parse_time
from stream.errors import SchemaViolationError

RECEIVED = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("message", "batch_sent_at", "expected"),
    [
        # no times at all -> received_at
        ({}, None, "2025-03-01T12:00:00.000Z"),
        # client timestamp only -> as given (historical imports keep their time)
        ({"timestamp": "2024-01-05T10:00:00Z"}, None, "2024-01-05T10:00:00.000Z"),
        # client clock 1 h ahead: sentAt - timestamp = 30 s before receipt
        (
            {"timestamp": "2025-03-01T12:59:30Z", "sentAt": "2025-03-01T13:00:00Z"},
            None,
            "2025-03-01T11:59:30.000Z",
        ),
        # originalTimestamp wins over timestamp; batch-level sentAt applies
        (
            {"originalTimestamp": "2025-03-01T10:00:00Z", "timestamp": "2030-01-01T00:00:00Z"},
            "2025-03-01T10:00:10Z",
            "2025-03-01T11:59:50.000Z",
        ),
        # sentAt without a client timestamp -> received_at
        ({"sentAt": "2025-03-01T11:00:00Z"}, None, "2025-03-01T12:00:00.000Z"),
        # offsets and nanosecond fractions
        ({"timestamp": "2025-03-01T13:00:00.123456789+01:00"}, None, "2025-03-01T12:00:00.123Z"),
        # epoch seconds and milliseconds
        ({"timestamp": 1740830400}, None, "2025-03-01T12:00:00.000Z"),
        ({"timestamp": 1740830400123}, None, "2025-03-01T12:00:00.123Z"),
        # up to one day ahead is tolerated
        ({"timestamp": "2025-03-02T11:59:00Z"}, None, "2025-03-02T11:59:00.000Z"),
    ],
)
def test_occurred_at(message: dict[str, Any], batch_sent_at: Any, expected: str) -> None:
    assert format_time(occurred_at(message, RECEIVED, batch_sent_at)) == expected


@pytest.mark.parametrize(
    "message",
    [
        {"timestamp": "2025-03-03T12:00:00Z"},
        {"timestamp": "2099-01-01T00:00:00Z"},
        {"timestamp": "2025-03-05T12:00:00Z", "sentAt": "2025-03-01T12:00:00Z"},
    ],
)
def test_future_is_refused(message: dict[str, Any]) -> None:
    with pytest.raises(SchemaViolationError, match="in the future"):
        occurred_at(message, RECEIVED)


def test_skew_correction_rescues_a_client_clock_far_ahead() -> None:
    message = {"timestamp": "2025-03-10T12:00:00Z", "sentAt": "2025-03-10T12:00:05Z"}
    assert format_time(occurred_at(message, RECEIVED)) == "2025-03-01T11:59:55.000Z"


@pytest.mark.parametrize(
    "value", ["", "yesterday", "2025-13-01T00:00:00Z", True, None, [], {}, "9" * 100, 10**30]
)
def test_bad_times_are_schema_violations(value: Any) -> None:
    with pytest.raises(SchemaViolationError):
        parse_time(value, "timestamp")


def test_naive_time_is_utc() -> None:
    assert parse_time("2025-03-01T12:00:00", "t") == RECEIVED


def test_format_time_is_millisecond_z() -> None:
    assert format_time(datetime(2025, 1, 2, 3, 4, 5, 678999, tzinfo=UTC)) == (
        "2025-01-02T03:04:05.678Z"
    )
