"""stream/times.py: the one reader and writer of RFC 3339 instants and durations."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from stream.times import format_rfc3339, format_us, from_us, parse_duration, parse_rfc3339, to_us


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2026-01-05T10:00:00Z", "2026-01-05T10:00:00+00:00"),
        ("2026-01-05t10:00:00z", "2026-01-05T10:00:00+00:00"),
        ("2026-01-05 10:00:00+01:00", "2026-01-05T10:00:00+01:00"),
        ("2026-01-05T10:00:00.5Z", "2026-01-05T10:00:00.500000+00:00"),
        ("2026-01-05T10:00:00.123456789Z", "2026-01-05T10:00:00.123456+00:00"),  # Go: 9 digits
        (" 2026-01-05T10:00:00-05:00 ", "2026-01-05T10:00:00-05:00"),
    ],
)
def test_rfc3339_forms_clients_send(text: str, iso: str) -> None:
    assert parse_rfc3339(text).isoformat() == iso


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-01T00:00:00Z", "2026-01-05T25:00Z"])
def test_not_a_time_says_what_is_wanted(text: str) -> None:
    with pytest.raises(ValueError, match="RFC 3339 time like 2026-01-05T10:00:00Z"):
        parse_rfc3339(text)


def test_a_time_without_offset_is_an_error_unless_utc_is_assumed() -> None:
    with pytest.raises(ValueError, match="no UTC offset"):
        parse_rfc3339("2026-01-05T10:00:00")
    assert parse_rfc3339("2026-01-05T10:00:00", assume_utc=True).tzinfo is UTC


def test_formats() -> None:
    at = datetime(2026, 1, 5, 10, 0, 0, 123456, tzinfo=UTC)
    assert format_rfc3339(at) == "2026-01-05T10:00:00.123Z"
    assert format_rfc3339(at, "us") == "2026-01-05T10:00:00.123456Z"
    assert format_rfc3339(at, "s") == "2026-01-05T10:00:00Z"
    assert format_rfc3339(at, "auto") == "2026-01-05T10:00:00.123456Z"
    assert format_rfc3339(at.replace(microsecond=0), "auto") == "2026-01-05T10:00:00Z"
    plus_one = at.astimezone(timezone(timedelta(hours=1)))
    assert format_rfc3339(plus_one) == "2026-01-05T10:00:00.123Z"  # always written in UTC


def test_microseconds_round_trip_exactly() -> None:
    for us in (0, 1, 1_767_607_200_123_456, -1):
        assert to_us(from_us(us)) == us
        assert to_us(parse_rfc3339(format_us(us, "us"))) == us


@pytest.mark.parametrize("precision", ["auto", "ms", "us", "s"])
def test_format_us_writes_what_format_rfc3339_writes(precision: str) -> None:
    """The cached writer of integer times (isoformat for whole seconds) equals the reference,
    years before 1000 included (written by strftime there, unpadded as before)."""
    rng = random.Random(7)
    first, last = to_us(datetime(1, 1, 2, tzinfo=UTC)), to_us(datetime(9999, 12, 30, tzinfo=UTC))
    instants = [rng.randint(first, last) for _ in range(3000)]
    instants += [0, -1, 1, 1_767_607_200_000_000, to_us(datetime(1000, 1, 1, tzinfo=UTC)) - 1]
    for us in instants:
        assert format_us(us, precision) == format_rfc3339(from_us(us), precision)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90.0),
        (1.5, 1.5),
        ("PT1H", 3600.0),
        ("P1D", 86400.0),
        ("P1DT12H", 129600.0),
        ("PT90M", 5400.0),
        ("pt0.5s", 0.5),
        ("5s", 5.0),
        ("30m", 1800.0),
        ("4 h", 14400.0),
        ("1 day", 86400.0),
        ("2.5d", 216000.0),
    ],
)
def test_durations(value: str | float, seconds: float) -> None:
    assert parse_duration(value).total_seconds() == seconds


@pytest.mark.parametrize("value", ["", "P", "PT", "P1DT", "5", "5 fortnights", "-5s", "1h30"])
def test_not_a_duration_says_the_accepted_forms(value: str) -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_duration(value)


def test_a_bool_is_not_a_duration() -> None:
    with pytest.raises(ValueError):
        parse_duration(True)
