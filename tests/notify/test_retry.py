"""Retry policy: classification table, backoff bounds, Retry-After, the retry loop."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.errors import DeliveryError, UnsafeUrlError
from stream.notify.retry import (
    RetryPolicy,
    exception_error,
    parse_retry_after,
    run_with_retry,
    status_error,
)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, None),
        (201, None),
        (204, None),
        (301, "permanent"),
        (302, "permanent"),
        (400, "permanent"),
        (401, "permanent"),
        (403, "permanent"),
        (404, "permanent"),
        (408, "retriable"),
        (409, "permanent"),
        (410, "permanent"),
        (413, "permanent"),
        (422, "permanent"),
        (429, "retriable"),
        (500, "retriable"),
        (502, "retriable"),
        (503, "retriable"),
        (504, "retriable"),
    ],
)
def test_status_classification(status: int, outcome: str | None) -> None:
    error = status_error(status)
    if outcome is None:
        assert error is None
    else:
        assert error is not None
        assert error.retriable is (outcome == "retriable")


@pytest.mark.parametrize(
    ("exc", "retriable"),
    [
        (TimeoutError(), True),
        (TimeoutError(), True),
        (aiohttp.ServerTimeoutError("read"), True),
        (aiohttp.ServerDisconnectedError(), True),
        (aiohttp.ClientOSError(111, "refused"), True),
        (ConnectionResetError(), True),
        (aiohttp.ClientPayloadError("short"), True),
        (UnsafeUrlError("x"), False),
        (aiohttp.InvalidURL("nope"), False),
        (DeliveryError("given", retriable=True), True),
        (ValueError("bug"), False),
    ],
)
def test_exception_classification(exc: BaseException, retriable: bool) -> None:
    assert exception_error(exc).retriable is retriable


def test_retry_after_from_status() -> None:
    error = status_error(429, "7")
    assert error is not None and error.retry_after == 7.0
    error = status_error(503, None)
    assert error is not None and error.retry_after is None


NOW = datetime(2025, 3, 1, 10, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Sat, 01 Mar 2025 10:00:30 GMT", 30.0),
        ("Sat, 01 Mar 2025 09:00:00 GMT", 0.0),  # in the past
        ("Sat, 01 Mar 2025 10:01:00 -0000", 60.0),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


@given(
    retry=st.integers(min_value=1, max_value=40),
    base=st.floats(min_value=0.001, max_value=10),
    cap=st.floats(min_value=0.01, max_value=600),
    seed=st.integers(),
)
def test_backoff_is_full_jitter_within_bounds(
    retry: int, base: float, cap: float, seed: int
) -> None:
    policy = RetryPolicy(base_delay=base, max_delay=cap, rng=random.Random(seed))
    delay = policy.backoff(retry)
    assert 0.0 <= delay <= min(cap, base * 2 ** (retry - 1))


def test_backoff_grows_exponentially_on_average() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=1000, rng=random.Random(1))
    means = [sum(policy.backoff(r) for _ in range(2000)) / 2000 for r in (1, 2, 3, 4)]
    for expected, mean in zip((0.5, 1.0, 2.0, 4.0), means, strict=True):
        assert expected * 0.9 < mean < expected * 1.1


@given(retry_after=st.floats(min_value=0, max_value=5000), seed=st.integers())
def test_retry_after_is_a_floor_up_to_the_cap(retry_after: float, seed: int) -> None:
    policy = RetryPolicy(base_delay=0.1, max_retry_after=900, rng=random.Random(seed))
    delay = policy.delay(1, retry_after)
    assert delay >= min(retry_after, 900)
    assert delay <= max(min(retry_after, 900), 0.1)


class Flaky:
    """Fails with the given errors in turn, then succeeds."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)


async def test_run_with_retry_outcomes() -> None:
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    policy = RetryPolicy(attempts=4, base_delay=0.01, rng=random.Random(0))
    retriable = DeliveryError("503", retriable=True)

    flaky = Flaky(retriable, retriable)
    result = await run_with_retry(flaky, policy, sleep=sleep)
    assert result.delivered and result.attempts == 3 and flaky.calls == 3

    always = Flaky(*[retriable] * 10)
    result = await run_with_retry(always, policy, sleep=sleep)
    assert not result.delivered and result.attempts == 4 and always.calls == 4
    assert result.error is retriable

    permanent = Flaky(DeliveryError("400", retriable=False), retriable)
    result = await run_with_retry(permanent, policy, sleep=sleep)
    assert result.attempts == 1 and result.error is not None and not result.error.retriable

    slept.clear()
    limited = Flaky(DeliveryError("429", retriable=True, retry_after=3.0))
    result = await run_with_retry(limited, policy, sleep=sleep)
    assert result.delivered and slept == [pytest.approx(3.0)]
