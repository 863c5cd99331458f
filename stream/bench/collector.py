"""Collector phase: HTTP ingest of one collector process, single events and 100-event batches.

The collector runs as a child process (its own CPU time in /proc/<pid>/stat) on its own topic
prefix against the bench's Kafka; the bench process drives it over loopback with aiohttp: a
fixed number of workers, each with one request in flight, for a fixed time. Request bodies are
realistic Segment messages from `stream.simulate` journeys, pre-serialised around their
`messageId` so that building a body costs the client almost nothing, and every message gets a
fresh id: the collector's transport dedupe would otherwise skip the produce and flatter it.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from stream.bench.kafkaio import cpu_seconds
from stream.bench.phases import Bench
from stream.demo import Processes, wait_http
from stream.dev.process import free_port
from stream.settings import Settings
from stream.simulate import build_journeys, default_start, ordered_messages
from stream.simulate.messages import iso
from stream.simulate.sender import basic_auth
from stream.topics import ensure_topics

# (name, route, events per request, concurrent requests)
MODES: tuple[tuple[str, str, int, int], ...] = (
    ("single", "/v1/track", 1, 64),
    ("batch", "/v1/batch", 100, 16),
)
REQUEST_TIMEOUT = 30.0
_MARK = "@@message-id@@"


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest rank of an ascending list (q in 0..1); 0.0 for an empty list."""
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def browser_key(settings: Settings) -> str:
    return next(k for k, (_, kind) in settings.parsed_write_keys().items() if kind == "browser")


class Bodies:
    """Request bodies from realistic browser-side Segment messages, each with a fresh messageId."""

    def __init__(self, seed: int, leads: int = 300):
        journeys = build_journeys(leads, seed, default_start())
        messages = [m.body for m in ordered_messages(journeys) if m.source == "browser"]
        self.track = [self._split(b) for b in messages if b["type"] == "track"]
        self.any = [self._split(b) for b in messages]
        self.prefix = f"bench-{os.getpid()}-{time.time_ns() // 1_000_000:x}-".encode()
        self.ids = itertools.count()
        self.rng = random.Random(seed)

    @staticmethod
    def _split(body: dict[str, Any]) -> tuple[bytes, bytes]:
        head, _, tail = orjson.dumps({**body, "messageId": _MARK}).partition(_MARK.encode())
        return head, tail

    def _message(self, pool: list[tuple[bytes, bytes]]) -> bytes:
        head, tail = pool[self.rng.randrange(len(pool))]
        return head + self.prefix + b"%x" % next(self.ids) + tail

    def single(self) -> bytes:
        """One track call (`POST /v1/track`)."""
        return self._message(self.track)

    def batch(self, size: int) -> bytes:
        """A `/v1/batch` body: `size` messages of every kind, `sentAt` now (as analytics.js)."""
        sent_at = iso(datetime.now(UTC)).encode()
        messages = b",".join(self._message(self.any) for _ in range(size))
        return b'{"batch":[' + messages + b'],"sentAt":"' + sent_at + b'"}'


async def drive(
    url: str,
    headers: dict[str, str],
    body: Callable[[], bytes],
    *,
    per_request: int,
    concurrency: int,
    warmup: float,
    seconds: float,
    pid: int,
    alive: Callable[[], None],
) -> dict[str, Any]:
    """`concurrency` workers post back to back; requests started in the timed window count.

    The window runs from the end of the warm-up (not counted: connections, the producer's first
    metadata) to the completion of the last counted request; the collector's and the bench's own
    CPU seconds are read at both ends.
    """
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    began = time.perf_counter()
    t0, stop = began + warmup, began + warmup + seconds
    marks: dict[str, float] = {}

    async def worker(session: aiohttp.ClientSession) -> None:
        while (start := time.perf_counter()) < stop:
            counted = start >= t0
            if counted and "cpu0" not in marks:
                marks["cpu0"], marks["own0"] = cpu_seconds(pid), cpu_seconds(os.getpid())
                marks["t0"] = start
            try:
                async with session.post(url, data=body(), headers=headers) as resp:
                    await resp.read()
                    status = str(resp.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                status = type(exc).__name__
            if counted:
                if status == "200":
                    latencies.append((time.perf_counter() - start) * 1000.0)
                else:
                    errors[f"HTTP {status}" if status.isdigit() else status] += 1
            if status != "200":
                alive()  # a dead collector fails fast: stop instead of spinning
                await asyncio.sleep(0.01)

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    end = time.perf_counter()
    alive()
    window = end - marks.get("t0", end)
    requests = len(latencies) + sum(errors.values())
    events = len(latencies) * per_request
    latencies.sort()
    per_1k = 1000.0 / events if events else 0.0
    return {
        "concurrency": float(concurrency),
        "events_per_request": float(per_request),
        "seconds": window,
        "requests": float(requests),
        "events": float(events),
        "errors": float(sum(errors.values())),
        "error_kinds": dict(errors),
        "requests_per_s": len(latencies) / window if window else 0.0,
        "events_per_s": events / window if window else 0.0,
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": latencies[-1] if latencies else 0.0,
        "cpu_s_per_1k": (cpu_seconds(pid) - marks.get("cpu0", 0.0)) * per_1k,
        "bench_cpu_s_per_1k": (cpu_seconds(os.getpid()) - marks.get("own0", 0.0)) * per_1k,
    }


async def run_collector(
    settings: Settings, log_dir: Path, seconds: float, seed: int
) -> dict[str, dict[str, Any]]:
    """Start a collector on `settings` (its own prefix) and measure both modes, one after the
    other on the same process: {mode: numbers, with the route}."""
    settings = settings.replace(collector_port=free_port())
    await ensure_topics(settings)
    procs = Processes(settings, log_dir)
    procs.start("collector")
    base = f"http://{settings.collector_host}:{settings.collector_port}"
    headers = {
        "Content-Type": "application/json",
        "Authorization": basic_auth(browser_key(settings)),
    }
    bodies = Bodies(seed)
    results: dict[str, dict[str, Any]] = {}
    try:
        await wait_http(f"{base}/readyz", procs)
        pid = procs.children["collector"].pid
        for name, route, size, concurrency in MODES:
            make = bodies.single if size == 1 else functools.partial(bodies.batch, size)
            numbers = await drive(
                base + route,
                headers,
                make,
                per_request=size,
                concurrency=concurrency,
                warmup=min(1.0, seconds / 5),
                seconds=seconds,
                pid=pid,
                alive=procs.check_alive,
            )
            results[name] = {"route": route, **numbers}
    finally:
        procs.stop()
    return results


async def collector_phase(bench: Bench) -> None:
    plan = bench.plan
    bench.results["collector"] = await run_collector(
        bench.phase_settings("collector"),
        plan.work / "logs" / "collector",
        plan.http_seconds,
        plan.seed,
    )
