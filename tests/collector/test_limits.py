"""Limits: gzip with bomb protection, token buckets, the retry-dedupe LRU."""

from __future__ import annotations

import gzip
import zlib

import pytest

from stream.collector.limits import RateLimiter, decode_body, gunzip
from stream.errors import InvalidJsonError, SizeViolationError


def test_gunzip_round_trip_and_multi_member() -> None:
    assert gunzip(gzip.compress(b'{"a": 1}'), 100) == b'{"a": 1}'
    assert gunzip(gzip.compress(b"ab") + gzip.compress(b"cd"), 100) == b"abcd"


def test_gzip_bomb_stops_at_the_cap() -> None:
    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024))  # 50 MiB of zeros in ~50 KiB
    assert len(bomb) < 100_000
    with pytest.raises(SizeViolationError, match="inflates past"):
        gunzip(bomb, 500 * 1024)


def test_exactly_at_the_cap_is_fine() -> None:
    assert len(gunzip(gzip.compress(b"x" * 1000), 1000)) == 1000
    with pytest.raises(SizeViolationError):
        gunzip(gzip.compress(b"x" * 1001), 1000)


@pytest.mark.parametrize(
    "data",
    [
        b"\x1f\x8b not gzip at all",
        gzip.compress(b"hello world" * 100)[:-20],  # truncated
        zlib.compress(b"zlib, not gzip"),
    ],
)
def test_corrupt_gzip_is_invalid(data: bytes) -> None:
    with pytest.raises(InvalidJsonError):
        gunzip(data if data.startswith(b"\x1f\x8b") else b"\x1f\x8b" + data, 1000)


def test_decode_body_encodings() -> None:
    assert decode_body(b"{}", "", 10) == b"{}"
    assert decode_body(gzip.compress(b"{}"), "gzip", 10) == b"{}"
    assert decode_body(b"{}", "gzip", 10) == b"{}"  # already inflated by aiohttp
    with pytest.raises(InvalidJsonError, match="br"):
        decode_body(b"...", "br", 10)


def test_rate_limiter_borrows_then_waits() -> None:
    now = [0.0]
    limiter = RateLimiter(10, clock=lambda: now[0])
    assert limiter.retry_after("k") is None
    limiter.charge("k", 30)  # a batch larger than the bucket gets through once
    assert limiter.retry_after("k") == 3  # then pays its debt: (1 - (10 - 30)) / 10
    assert limiter.retry_after("other") is None  # buckets are per write key
    now[0] = 2.05
    assert limiter.retry_after("k") is None
    now[0] = 100.0
    limiter.charge("k", 5)
    assert limiter.retry_after("k") is None


def test_rate_limiter_off() -> None:
    limiter = RateLimiter(0)
    limiter.charge("k", 10**9)
    assert limiter.retry_after("k") is None


def test_rate_limiter_forgets_the_least_recent_keys_past_its_bound() -> None:
    now = [0.0]
    limiter = RateLimiter(1.0, clock=lambda: now[0], capacity=1.0, max_keys=2)
    limiter.charge("a", 1)
    assert limiter.retry_after("a") == 1
    limiter.charge("b", 1)
    limiter.charge("c", 1)  # "a" is the least recent of three: forgotten, so full again
    assert limiter.retry_after("a") is None
    assert limiter.retry_after("c") == 1


def test_rate_limiter_take_never_borrows() -> None:
    now = [0.0]
    budget = RateLimiter(3 / 60, clock=lambda: now[0], capacity=3)
    assert [budget.take("addr") for _ in range(4)] == [True, True, True, False]
    now[0] = 20.0  # a third of a minute: one more
    assert budget.take("addr") and not budget.take("addr")
    assert budget.take("other")  # per key
