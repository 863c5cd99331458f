"""Retry policy: which failures to retry, and how long to wait (exponential, full jitter).

These are the *quick* retries, in process, while a lane slot and the partition's commit wait;
`stream/notify/parked.py` holds the persisted schedule that takes over when they fail.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp

from stream.errors import DeliveryError, UnsafeUrlError
from stream.redact import redact_url

# 408 Request Timeout and 429 Too Many Requests are the 4xx answers that invite a retry; every
# other 4xx says the request itself is wrong, and sending it again cannot help.
RETRIABLE_4XX = frozenset({408, 429})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry one delivery to one sink."""

    attempts: int = 3
    """Attempts in all, the first included; then the handoff is parked (or dead-lettered)."""
    base_delay: float = 0.5
    """Upper bound of the first retry's delay; doubles per retry."""
    max_delay: float = 30.0
    """Cap of the exponential bound (before jitter)."""
    max_retry_after: float = 900.0
    """Longest Retry-After honoured; a longer one is cut to this."""
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def backoff(self, retry: int) -> float:
        """Delay before retry number `retry` (1 = the second attempt): full jitter.

        Uniform in [0, min(max_delay, base_delay * 2**(retry-1))] ("full jitter", AWS
        architecture blog): spreads retries of many notifiers that failed at the same moment.
        """
        bound = min(self.max_delay, self.base_delay * 2 ** max(0, retry - 1))
        return self.rng.uniform(0.0, bound)

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Backoff, but never shorter than what the receiver asked for in Retry-After."""
        jittered = self.backoff(retry)
        if retry_after is None:
            return jittered
        return max(jittered, min(retry_after, self.max_retry_after))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None if absent
    or unreadable. A date in the past means 0."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" dates come back naive; HTTP dates are always GMT
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def status_error(
    status: int, retry_after: str | None = None, body: str = ""
) -> DeliveryError | None:
    """None for 2xx; otherwise the DeliveryError that `status` means (retriable or not)."""
    if 200 <= status < 300:
        return None
    detail = f"HTTP {status}" + (f": {body[:200]}" if body else "")
    if status in RETRIABLE_4XX or status >= 500:
        return DeliveryError(detail, retriable=True, retry_after=parse_retry_after(retry_after))
    if 300 <= status < 400:
        # Redirects are not followed: the target could be anywhere (SSRF); configure the final URL.
        return DeliveryError(f"{detail} (redirect not followed)", retriable=False)
    return DeliveryError(detail, retriable=False)


def exception_error(exc: BaseException) -> DeliveryError:
    """The DeliveryError an exception raised while sending means."""
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, UnsafeUrlError):
        return DeliveryError(str(exc), retriable=False)
    if isinstance(exc, aiohttp.InvalidURL):
        return DeliveryError(f"invalid URL: {redact_url(str(exc.url))}", retriable=False)
    if isinstance(exc, TimeoutError):  # asyncio.TimeoutError and aiohttp's timeouts
        return DeliveryError(f"timeout: {type(exc).__name__}", retriable=True)
    if isinstance(exc, aiohttp.ClientError | OSError):
        return DeliveryError(f"connection error: {type(exc).__name__}: {exc}", retriable=True)
    return DeliveryError(f"unexpected error: {type(exc).__name__}: {exc}", retriable=False)


@dataclass
class RetryResult:
    """What came of delivering one handoff to one sink."""

    attempts: int
    error: DeliveryError | None = None
    """None when delivered; else the last error (permanent, or the one that exhausted retries)."""

    @property
    def delivered(self) -> bool:
        return self.error is None


async def run_with_retry(
    attempt: Callable[[], Awaitable[None]],
    policy: RetryPolicy,
    *,
    before_attempt: Callable[[int], Awaitable[object]] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    longest_pause: float | None = None,
) -> RetryResult:
    """Call `attempt` until it returns, raises a permanent error, or attempts run out.

    `attempt` raises DeliveryError (or anything `exception_error` can classify); cancellation
    passes through untouched. A pause longer than `longest_pause` (a long Retry-After) is not
    waited for: the loop ends with the retriable error, for the caller to park the delivery.
    """
    error: DeliveryError | None = None
    for number in range(1, max(1, policy.attempts) + 1):
        if number > 1:
            assert error is not None
            pause = policy.delay(number - 1, error.retry_after)
            if longest_pause is not None and pause > longest_pause:
                return RetryResult(number - 1, error)
            await sleep(pause)
        if before_attempt is not None:
            await before_attempt(number)
        try:
            await attempt()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is classified, none escapes
            error = exception_error(exc)
            if not error.retriable:
                return RetryResult(number, error)
            continue
        return RetryResult(number)
    return RetryResult(max(1, policy.attempts), error)
