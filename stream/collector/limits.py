"""Request limits: capped and timed body reads, gzip with bomb protection, rate limits."""

from __future__ import annotations

import asyncio
import math
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from stream.errors import InvalidJsonError, RequestTimeoutError, SizeViolationError

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 64 * 1024


async def read_body(request: web.Request, max_bytes: int, timeout: float | None = None) -> bytes:
    """The request body, refused with SizeViolationError past `max_bytes` before reading it all.

    Content-Length is checked first; chunked bodies are read in pieces and the read stops as
    soon as the cap is passed, so a huge body never sits in memory. A body that takes longer
    than `timeout` seconds is RequestTimeoutError: a client trickling bytes (slowloris) would
    otherwise hold a connection and its buffer for as long as it likes.
    """
    if timeout is None:
        return await _read_capped(request, max_bytes)
    try:
        async with asyncio.timeout(timeout):
            return await _read_capped(request, max_bytes)
    except TimeoutError:
        raise RequestTimeoutError(f"request body not received within {timeout:g}s") from None


async def _read_capped(request: web.Request, max_bytes: int) -> bytes:
    length = request.content_length
    if length is not None and length > max_bytes:
        raise SizeViolationError(f"request body of {length} bytes exceeds {max_bytes} bytes")
    parts: list[bytes] = []
    total = 0
    while True:
        try:
            chunk = await request.content.read(_CHUNK)
        except RequestPayloadError as exc:  # e.g. aiohttp's own inflate failed (auto_decompress)
            raise InvalidJsonError(f"unreadable request body: {exc}") from None
        if not chunk:
            break
        total += len(chunk)
        if total > max_bytes:
            raise SizeViolationError(f"request body exceeds {max_bytes} bytes")
        parts.append(chunk)
    return b"".join(parts)


def decode_body(body: bytes, content_encoding: str, max_bytes: int) -> bytes:
    """Inflate a gzip body with a hard cap on the inflated size (a gzip bomb is a 413).

    When aiohttp already inflated the body (its auto_decompress is on), the bytes no longer
    start with the gzip magic and are returned as they are; the capped read kept them small.
    """
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise InvalidJsonError(f"Content-Encoding {encoding!r} is not supported; use gzip")
    if not body.startswith(_GZIP_MAGIC):
        return body
    return gunzip(body, max_bytes)


def gunzip(data: bytes, max_bytes: int) -> bytes:
    """Inflate (possibly multi-member) gzip data, never producing more than `max_bytes`."""
    out: list[bytes] = []
    total = 0
    rest = data
    while rest:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            chunk = inflater.decompress(rest, max_bytes - total + 1)
            while True:
                total += len(chunk)
                if total > max_bytes:
                    raise SizeViolationError(f"gzip body inflates past {max_bytes} bytes")
                out.append(chunk)
                if inflater.eof or not inflater.unconsumed_tail:
                    break
                chunk = inflater.decompress(inflater.unconsumed_tail, max_bytes - total + 1)
        except zlib.error as exc:
            raise InvalidJsonError(f"body is not valid gzip: {exc}") from None
        if not inflater.eof:
            raise InvalidJsonError("body is truncated gzip")
        rest = inflater.unused_data
        if rest and not rest.startswith(_GZIP_MAGIC):
            break  # trailing garbage after the last member, as gzip(1) tolerates
    return b"".join(out)


class RateLimiter:
    """A token bucket per write key, in events per second; a batch may borrow ahead.

    The bucket holds one second of events. A request is refused only while the bucket is empty,
    so a batch larger than the bucket still gets through once and then pays its debt: its
    sender waits `retry_after` seconds, which is what Segment's SDKs do on 429.
    """

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        capacity: float | None = None,
        max_keys: int = 100_000,
    ) -> None:
        self.rate = rate
        self.capacity = max(rate, 1.0) if capacity is None else capacity
        self._clock = clock
        self.max_keys = max_keys
        """Buckets kept; the least recently used go first, so many keys cannot exhaust memory."""
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def retry_after(self, key: str) -> int | None:
        """Seconds to wait before this key may send again, or None when it may send now."""
        if self.rate <= 0:
            return None
        tokens = self._refill(key)
        if tokens > 0:
            return None
        return max(1, math.ceil((1 - tokens) / self.rate))

    def charge(self, key: str, events: int) -> None:
        """Take `events` tokens; the bucket may go negative (borrowing)."""
        if self.rate <= 0:
            return
        tokens = self._refill(key)
        self._buckets[key] = (tokens - events, self._clock())

    def take(self, key: str, events: int = 1) -> bool:
        """Take `events` tokens only if the bucket holds them (no borrowing): a hard budget."""
        if self.rate <= 0:
            return True
        tokens = self._refill(key)
        if tokens < events:
            return False
        self._buckets[key] = (tokens - events, self._clock())
        return True

    def _refill(self, key: str) -> float:
        now = self._clock()
        tokens, at = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.rate)
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return tokens
