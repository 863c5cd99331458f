"""Event time: parse client timestamps, correct client clock skew, format RFC 3339 UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from stream.errors import SchemaViolationError
from stream.times import format_rfc3339, parse_rfc3339

MAX_FUTURE = timedelta(days=1)
# Epoch numbers below this are seconds, above it milliseconds (year 2286 in seconds).
_MS_THRESHOLD = 10_000_000_000
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


def format_time(value: datetime) -> str:
    """RFC 3339 UTC with millisecond precision and 'Z': the canonical event time format."""
    return format_rfc3339(value, "ms")


def parse_time(value: Any, field: str) -> datetime:
    """An aware UTC datetime from an ISO 8601 / RFC 3339 string or epoch seconds/milliseconds.

    Strings without an offset are read as UTC (what Segment's SDKs mean). Anything else raises
    SchemaViolationError naming the field and the value.
    """
    if isinstance(value, bool):
        raise SchemaViolationError(f"{field}: want an ISO 8601 time, got {value!r}")
    if isinstance(value, int | float):
        seconds = value / 1000 if abs(value) >= _MS_THRESHOLD else float(value)
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise SchemaViolationError(f"{field}: epoch {value!r} is out of range") from None
    if not isinstance(value, str) or not value or len(value) > 64:
        raise SchemaViolationError(f"{field}: want an ISO 8601 time, got {_short(value)}")
    try:
        parsed = parse_rfc3339(value, assume_utc=True)
    except ValueError:
        raise SchemaViolationError(
            f"{field}: {_short(value)} is not an ISO 8601 time (want e.g. 2024-05-01T12:00:00Z)"
        ) from None
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise SchemaViolationError(f"{field}: {_short(value)} is out of range") from None


def occurred_at(
    message: dict[str, Any], received_at: datetime, batch_sent_at: Any = None
) -> datetime:
    """The event time of a Segment message, corrected for the client's clock.

    `occurred = receivedAt - (sentAt - originalTimestamp)` when the client says when it sent the
    message (on the message or the batch), else its timestamp as given, else `received_at`.
    Times more than a day ahead of `received_at` are refused: the client clock or payload is
    broken, and a far-future event would move the lead's clock for good.
    """
    client_value = message.get("originalTimestamp")
    field = "originalTimestamp"
    if client_value is None:
        client_value, field = message.get("timestamp"), "timestamp"
    sent_value = message.get("sentAt", batch_sent_at)
    if client_value is None:
        return received_at
    client = parse_time(client_value, field)
    if sent_value is not None:
        sent = parse_time(sent_value, "sentAt")
        try:
            result = received_at - (sent - client)
        except OverflowError:
            raise SchemaViolationError(f"{field}: {client_value!r} is out of range") from None
    else:
        result = client
    check_not_future(result, received_at, field)
    return result


def check_not_future(value: datetime, received_at: datetime, field: str = "timestamp") -> None:
    """Refuse an event time more than MAX_FUTURE after the receipt time."""
    if value - received_at > MAX_FUTURE:
        raise SchemaViolationError(
            f"{field} {format_time(value)} is in the future (received {format_time(received_at)}); "
            "fix the client clock or the timestamp"
        )
    if value < _EARLIEST:
        raise SchemaViolationError(f"{field} {format_time(value)} is before 1970")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
