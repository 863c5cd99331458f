"""Request limits: capped body reads, gzip with bomb protection, rate limits, retry dedupe."""

from __future__ import annotations

import math
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from stream.errors import InvalidJsonError, SizeViolationError

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 64 * 1024


async def read_body(request: web.Request, max_bytes: int) -> bytes:
    """The request body, refused with SizeViolationError past `max_bytes` before reading it all.

    Content-Length is checked first; chunked bodies are read in pieces and the read stops as
    soon as the cap is passed, so a huge body never sits in memory.
    """
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

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

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

    def _refill(self, key: str) -> float:
        now = self._clock()
        tokens, at = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.rate)
        self._buckets[key] = (tokens, now)
        return tokens


class RecentIds:
    """The last `size` message ids per write key, so a retried SDK batch is not produced twice.

    Transport-level only: bounded and in memory, lost on restart. The worker dedupes on
    event_id inside its state, which is the real guarantee.
    """

    def __init__(self, size: int = 100_000) -> None:
        self.size = size
        self._ids: dict[str, OrderedDict[str, None]] = {}

    def seen(self, key: str, message_id: str) -> bool:
        ids = self._ids.get(key)
        if ids is None or message_id not in ids:
            return False
        ids.move_to_end(message_id)
        return True

    def add(self, key: str, message_ids: list[str]) -> None:
        ids = self._ids.setdefault(key, OrderedDict())
        for message_id in message_ids:
            ids[message_id] = None
            ids.move_to_end(message_id)
        while len(ids) > self.size:
            ids.popitem(last=False)
