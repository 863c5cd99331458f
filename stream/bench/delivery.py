"""Delivery phase: event → delivered notification, through every process of the pipeline.

Collector, worker and notifier run as child processes on their own topic prefix; the sales
webhook is a `WebhookReceiver` in the bench process, so the clock that stamps a "Demo
Requested" request and the clock that stamps the arrival of its signed delivery are the same
(time.monotonic()). Hand-raisers (an identify with A-grade traits, then "Demo Requested") go
through the collector at a fixed rate, mixed with anonymous page views in batches.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from stream.bench.collector import browser_key, percentile
from stream.bench.kafkaio import BenchError, HandoffTail
from stream.bench.phases import Bench
from stream.demo import Processes, wait_http
from stream.dev.process import free_port
from stream.dev.receiver import WebhookReceiver
from stream.settings import Settings
from stream.simulate.messages import LIBRARY, SITE, USER_AGENT, iso
from stream.simulate.personas import DECISION_MAKER, profile
from stream.simulate.sender import basic_auth
from stream.topics import Topics, ensure_topics

# A moderate load for one worker on 2 cores (about a quarter of its drain rate): the phase
# measures the pipeline's latency, not a backlog (the latency phase covers half load).
HAND_RAISERS_PER_S = 5.0
BACKGROUND_PER_S = 100.0
BACKGROUND_BATCH = 10  # 10 batches a second
VISITORS = 5_000
PAGES = ("/", "/blog/what-is-lead-scoring", "/blog/mql-vs-sql", "/customers", "/about", "/docs")
CONNECTIONS = 32
GRACE_SECONDS = 60.0
"""Longest wait after the last request for the deliveries still missing."""


class Traffic:
    """Posts live Segment messages (timestamp = now) and remembers when each demo was sent."""

    def __init__(self, session: aiohttp.ClientSession, base: str, key: str, seed: int):
        self.session, self.base = session, base
        self.headers = {"Content-Type": "application/json", "Authorization": basic_auth(key)}
        self.rng = random.Random(seed)
        self.tag = f"bench{time.time_ns() // 1_000_000:x}"
        self.visitors = [str(uuid.UUID(int=self.rng.getrandbits(128), version=4)) for _ in
                         range(VISITORS)]  # fmt: skip
        self.ids = 0
        self.sent: dict[str, tuple[float, str]] = {}
        """User id → (monotonic instant its demo request was sent, its anonymous id)."""
        self.request_ms: list[float] = []
        self.background = 0
        self.errors: Counter[str] = Counter()

    def _base(self, kind: str, anonymous_id: str, path: str) -> dict[str, Any]:
        self.ids += 1
        return {
            "type": kind,
            "messageId": f"{self.tag}-{self.ids:x}",
            "anonymousId": anonymous_id,
            "timestamp": iso(datetime.now(UTC)),
            "context": {
                "library": dict(LIBRARY),
                "page": {"path": path, "url": SITE + path},
                "userAgent": USER_AGENT,
            },
        }

    async def _post(self, route: str, body: dict[str, Any]) -> bool:
        try:
            async with self.session.post(
                self.base + route, data=orjson.dumps(body), headers=self.headers
            ) as resp:
                await resp.read()
                if resp.status == 200:
                    return True
                self.errors[f"HTTP {resp.status}"] += 1
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.errors[type(exc).__name__] += 1
        return False

    async def hand_raiser(self, n: int, *, counted: bool = True) -> str:
        """Identify (A-grade decision maker), then once that is acknowledged "Demo Requested".
        Returns the anonymous id (the lead id of the delivery may be either id)."""
        user_id = f"{self.tag}-hr-{n:05d}"
        anonymous_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        identify = self._base("identify", anonymous_id, "/pricing")
        identify |= {"userId": user_id, "traits": profile(DECISION_MAKER, self.rng, n)}
        if not await self._post("/v1/identify", identify):
            return user_id
        demo = self._base("track", anonymous_id, "/demo")
        demo |= {"userId": user_id, "event": "Demo Requested",
                 "properties": {"form_id": "demo-request"}}  # fmt: skip
        start = time.monotonic()
        if await self._post("/v1/track", demo) and counted:
            self.request_ms.append((time.monotonic() - start) * 1000.0)
            self.sent[user_id] = (start, anonymous_id)
        return anonymous_id

    async def page_views(self, count: int) -> None:
        batch = []
        for _ in range(count):
            path = PAGES[self.rng.randrange(len(PAGES))]
            message = self._base("page", self.rng.choice(self.visitors), path)
            message |= {"name": path, "properties": {"path": path, "url": SITE + path}}
            batch.append(message)
        if await self._post("/v1/batch", {"batch": batch, "sentAt": iso(datetime.now(UTC))}):
            self.background += count


def _arrivals(receiver: WebhookReceiver) -> dict[str, float]:
    """Lead id → arrival of its first fast-lane delivery (the Demo Requested's handoff)."""
    first: dict[str, float] = {}
    for data, at in zip(receiver.deliveries, receiver.arrivals, strict=True):
        if data.get("reason") == "fast_lane":
            first.setdefault(str(data.get("lead_id")), at)
    return first


def _latencies(sent: dict[str, tuple[float, str]], arrivals: dict[str, float]) -> list[float]:
    """Milliseconds from each demo request to its delivery, matched by user or anonymous id."""
    out = []
    for user_id, (at, anonymous_id) in sent.items():
        arrived = arrivals.get(user_id) or arrivals.get(anonymous_id)
        if arrived is not None:
            out.append((arrived - at) * 1000.0)
    return sorted(out)


async def _until(check: Any, timeout: float, alive: Any) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive()
        if check():
            return True
        await asyncio.sleep(0.1)
    return False


async def run_delivery(
    settings: Settings, log_dir: Path, seconds: float, timeout: float, seed: int
) -> dict[str, Any]:
    receiver = WebhookReceiver(settings.webhook_secret.split()[0])
    port = free_port()
    settings = settings.replace(
        collector_port=free_port(),
        notifier_port=free_port(),
        webhook_url=f"http://127.0.0.1:{port}/hooks/sales",
        allow_private_urls=True,
    )
    await ensure_topics(settings)
    procs = Processes(settings, log_dir)
    base, host = f"http://{settings.collector_host}:{settings.collector_port}", "127.0.0.1"
    await receiver.start(port)
    try:
        for name in ("collector", "worker", "notifier"):
            procs.start(name)
        await wait_http(f"{base}/readyz", procs)
        await wait_http(f"http://{host}:{settings.worker_port}/metrics", procs, timeout=timeout)
        await wait_http(f"http://{host}:{settings.notifier_port}/healthz", procs)
        topic = Topics.from_settings(settings).handoff
        connector = aiohttp.TCPConnector(limit=CONNECTIONS)
        client_timeout = aiohttp.ClientTimeout(total=10.0)
        async with (
            HandoffTail(settings.kafka_bootstrap, topic) as tail,
            aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session,
        ):
            traffic = Traffic(session, base, browser_key(settings), seed)
            # Ready when a first hand-raiser is delivered: worker joined, notifier consuming.
            marker = await traffic.hand_raiser(99_999, counted=False)

            def ready() -> bool:
                return bool(set(_arrivals(receiver)) & {marker, f"{traffic.tag}-hr-99999"})

            if not await _until(ready, timeout, procs.check_alive):
                raise BenchError(f"no delivery within {timeout:.0f}s; see the logs in {log_dir}")
            await _paced(traffic, seconds, procs)

            def complete() -> bool:
                return len(_latencies(traffic.sent, _arrivals(receiver))) >= len(traffic.sent)

            await _until(complete, GRACE_SECONDS, procs.check_alive)
            await asyncio.sleep(0.3)  # the tail's last fetch
            handoffs: dict[str, float] = {}
            for mono, _, key, _ in tail.seen:  # a lead's last handoff: its fast lane
                handoffs[key.decode()] = max(mono, handoffs.get(key.decode(), 0.0))
    finally:
        procs.stop()
        await receiver.stop()
    arrivals = _arrivals(receiver)
    lat = _latencies(traffic.sent, arrivals)
    if not lat:
        raise BenchError(f"no hand-raiser was delivered; see the logs in {log_dir}")
    delivered = {u: v for u, v in traffic.sent.items() if u in arrivals or v[1] in arrivals}
    worker = _latencies(delivered, handoffs)
    traffic.request_ms.sort()
    return {
        "hand_raisers_per_s": HAND_RAISERS_PER_S,
        "background_per_s": BACKGROUND_PER_S,
        "seconds": seconds,
        "expected": float(len(traffic.sent)),
        "delivered": float(len(lat)),
        "p50_ms": percentile(lat, 0.50),
        "p99_ms": percentile(lat, 0.99),
        "max_ms": lat[-1],
        "handoff_p50_ms": percentile(worker, 0.50),
        "handoff_p99_ms": percentile(worker, 0.99),
        "request_p50_ms": percentile(traffic.request_ms, 0.50),
        "background_events": float(traffic.background),
        "deliveries": float(len(receiver.deliveries)),
        "rejected": float(receiver.rejected),
        "duplicates": float(receiver.duplicates),
        "errors": float(sum(traffic.errors.values())),
        "error_kinds": dict(traffic.errors),
    }


async def _paced(traffic: Traffic, seconds: float, procs: Processes) -> None:
    """Hand-raisers and page-view batches at their fixed rates for `seconds`, then all acked."""
    tasks: set[asyncio.Task[Any]] = set()
    start, hand_raisers, batches = time.monotonic(), 0, 0
    per_s = BACKGROUND_PER_S / BACKGROUND_BATCH
    while (elapsed := time.monotonic() - start) < seconds:
        while hand_raisers < HAND_RAISERS_PER_S * elapsed:
            tasks.add(asyncio.create_task(traffic.hand_raiser(hand_raisers)))
            hand_raisers += 1
        while batches < per_s * elapsed:
            tasks.add(asyncio.create_task(traffic.page_views(BACKGROUND_BATCH)))
            batches += 1
        procs.check_alive()
        await asyncio.sleep(0.005)
    await asyncio.gather(*tasks)


async def delivery_phase(bench: Bench) -> None:
    plan = bench.plan
    bench.results["delivery"] = await run_delivery(
        bench.phase_settings("delivery"),
        plan.work / "logs" / "delivery",
        plan.delivery_seconds,
        plan.timeout,
        plan.seed,
    )
