"""Instants and durations as text: the one place that reads and writes RFC 3339 and durations.

Every process meets times from outside (SDK timestamps, provider webhooks, model SLAs, settings
like `5s,5m,2h`) and writes them back (events, handoffs, reports). One reader and one writer
keep those forms identical everywhere; callers wrap `ValueError` in their own error, which
names the field the text came from. Only the standard library: the pure engine uses it too.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Literal

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US_PER_SECOND = 1_000_000
US_PER_DAY = 86_400 * US_PER_SECOND

Precision = Literal["s", "ms", "us", "auto"]

# fromisoformat takes at most 6 fraction digits; JavaScript and Go send more or fewer.
_FRACTION = re.compile(r"\.(\d+)")
_ISO_DURATION = re.compile(
    r"P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?"
    r"(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?"
)
_SHORT_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")
_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1.0),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600.0),
    **dict.fromkeys(("d", "day", "days"), 86400.0),
    **dict.fromkeys(("w", "week", "weeks"), 604800.0),
}


def parse_rfc3339(text: str, *, assume_utc: bool = False) -> datetime:
    """An aware datetime from RFC 3339 (`Z` or an offset; `t` or a space as separator).

    `assume_utc` reads a time without an offset as UTC (what Segment's SDKs mean); without it,
    such a time is an error. Raises ValueError saying what is wrong.
    """
    value = text.strip()
    if value[-1:] in ("z", "Z"):
        value = value[:-1] + "+00:00"
    if value[10:11] in ("t", " "):
        value = value[:10] + "T" + value[11:]
    value = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), value, count=1)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{text!r} is not an RFC 3339 time like 2026-01-05T10:00:00Z") from None
    if parsed.tzinfo is None:
        if not assume_utc:
            raise ValueError(f"{text!r} has no UTC offset: add Z or e.g. +01:00")
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


# The form every event carries once the collector has written it (`2026-01-05T08:00:00.123Z`):
# read by the C parser directly, the same value `parse_rfc3339` gives for it, ~5x faster.
_FROMISO = datetime.fromisoformat
_ONE_US = timedelta(microseconds=1)
_SECONDS: dict[int, str] = {}
_WRITTEN: dict[tuple[int, str], str] = {}
_CACHE_MAX = 100_000
# Whole seconds are written by `datetime.isoformat` (C, ~4x faster than strftime); it pads
# years below 1000 to four digits where strftime does not, so those keep strftime.
_NAIVE_EPOCH = datetime(1970, 1, 1)
_YEAR_1000 = (datetime(1000, 1, 1) - _NAIVE_EPOCH) // timedelta(seconds=1)


def parse_us(text: str, *, assume_utc: bool = False) -> int:
    """`to_us(parse_rfc3339(text))`, fast for the canonical form; raises ValueError alike.

    Why: an event time is read for every event the engine applies. For text with a `T` at
    10, a `Z` at the end and no more than microseconds, `datetime.fromisoformat` reads what
    `parse_rfc3339` would hand it after its normalising, so both give one instant; anything
    else (or anything the C parser refuses) takes the normalising path and its error.
    """
    if 20 <= len(text) <= 27 and text[10] == "T" and text[-1] == "Z" and text.isascii():
        try:
            return (_FROMISO(text) - EPOCH) // _ONE_US
        except ValueError:
            pass
    return to_us(parse_rfc3339(text, assume_utc=assume_utc))


def is_time(text: str) -> bool:
    """Whether `parse_us(text)` would succeed (a received time is checked, not used)."""
    try:
        parse_us(text)
    except ValueError:
        return False
    return True


def to_us(value: datetime) -> int:
    """An aware datetime as integer microseconds since the epoch (exact)."""
    return (value - EPOCH) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    """Integer microseconds since the epoch as an aware UTC datetime (exact)."""
    return EPOCH + timedelta(microseconds=us)


def format_rfc3339(value: datetime, precision: Precision = "ms") -> str:
    """RFC 3339 in UTC with `Z`.

    `ms` is the form of published events and handoffs; `auto` writes microseconds only when
    there are any (the engine's ledger and replay output); `s` is for report stamps.
    """
    value = value.astimezone(UTC)
    stamp = value.strftime("%Y-%m-%dT%H:%M:%S")
    if precision == "ms":
        return f"{stamp}.{value.microsecond // 1000:03d}Z"
    if precision == "us" or (precision == "auto" and value.microsecond):
        return f"{stamp}.{value.microsecond:06d}Z"
    return f"{stamp}Z"


def format_us(us: int, precision: Precision = "auto") -> str:
    """`format_rfc3339` of integer microseconds since the epoch.

    Cached: every ledger entry, transition and lead snapshot is written with its times, and
    they repeat (a lead's clock is its last event; a replay's leads share their end).
    """
    text = _WRITTEN.get((us, precision))
    if text is not None:
        return text
    whole, micros = divmod(us, US_PER_SECOND)
    stamp = _SECONDS.get(whole)
    if stamp is None:
        if whole >= _YEAR_1000:
            stamp = (_NAIVE_EPOCH + timedelta(seconds=whole)).isoformat()
        else:
            stamp = from_us(whole * US_PER_SECOND).strftime("%Y-%m-%dT%H:%M:%S")
        if len(_SECONDS) >= _CACHE_MAX:
            _SECONDS.clear()
        _SECONDS[whole] = stamp
    if precision == "ms":
        text = f"{stamp}.{micros // 1000:03d}Z"
    elif precision == "us" or (precision == "auto" and micros):
        text = f"{stamp}.{micros:06d}Z"
    else:
        text = f"{stamp}Z"
    if len(_WRITTEN) >= _CACHE_MAX:
        _WRITTEN.clear()
    _WRITTEN[(us, precision)] = text
    return text


def parse_duration(value: str | float) -> timedelta:
    """A duration from seconds (a number), ISO 8601 (`PT1H`, `P1DT12H`, `PT0.5S`) or a short
    form (`5s`, `30m`, `4 h`, `1 day`). Raises ValueError naming the accepted forms."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    text = value.strip()
    iso = _ISO_DURATION.fullmatch(text.upper())
    if iso is not None and text.upper() not in ("P", "PT") and not text.upper().endswith("T"):
        parts = {k: float(v) for k, v in iso.groupdict().items() if v}
        return timedelta(
            days=parts.get("d", 0.0),
            hours=parts.get("h", 0.0),
            minutes=parts.get("m", 0.0),
            seconds=parts.get("s", 0.0),
        )
    short = _SHORT_DURATION.fullmatch(text.lower())
    if short is not None and short.group(2) in _UNITS:
        return timedelta(seconds=float(short.group(1)) * _UNITS[short.group(2)])
    raise ValueError(
        f"{value!r} is not a duration: want seconds, ISO 8601 (PT1H, P1D) or e.g. 5s, 30m, 2h, 1d"
    )
