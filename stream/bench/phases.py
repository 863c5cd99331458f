"""The benchmark's phases; each gets its own topic prefix, consumer group and state directory.

Why separate prefixes: a phase must never see another phase's records or committed offsets,
or a drain would start half done and a latency would include someone else's backlog.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from tqdm import tqdm

from stream.bench import events as ev
from stream.bench.baselines import measure_drain, run_b0, start_child, stop_child
from stream.bench.kafkaio import BenchError, HandoffTail, OffsetWatcher, produce, rss_bytes
from stream.demo import Processes, settings_env
from stream.dev.process import free_port
from stream.settings import Settings
from stream.topics import Topics, ensure_topics

MIB = 1024 * 1024


@dataclass(frozen=True)
class Plan:
    """What one run measures and how big; built by the CLI from --quick/--events/--leads."""

    settings: Settings
    """Broker, Redis, partitions and RocksDB caps shared by every phase."""
    work: Path
    """Event file, state directories and child-process logs."""
    events: int
    """Events in the pre-generated (skewed) file drained by B0, P-faust and the worker."""
    leads: int
    """Distinct leads of the memory/restart state (each gets two events)."""
    file_leads: int
    """Leads the skewed file's events are drawn from (Zipf–Mandelbrot)."""
    latency_seconds: float
    """How long the paced latency phase produces."""
    timeout: float
    """Longest wait for any one drain or readiness probe."""
    seed: int = 42
    http_seconds: float = 15.0
    """How long the collector phase drives each mode (single events, batches)."""
    delivery_seconds: float = 20.0
    """How long the delivery phase sends hand-raisers and background traffic."""


def _bar(total: float, desc: str, unit: str = "ev") -> Any:
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, leave=False, mininterval=0.5)


class Bench:
    """Runs phases on one plan and collects their numbers by phase name."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.tag = f"bench{int(time.time())}"
        self.file = plan.work / "events.jsonl"
        self.results: dict[str, dict[str, Any]] = {}

    def phase_settings(self, name: str) -> Settings:
        (self.plan.work / name).mkdir(parents=True, exist_ok=True)  # Faust creates only the leaf
        return self.plan.settings.replace(
            topic_prefix=f"{self.tag}-{name}.",
            redis_prefix=f"{self.tag}:{name}:",
            data_dir=str(self.plan.work / name / "data"),
            worker_port=free_port(),
            idle_tick_seconds=0.0,  # no wall-clock ticks: the by-lead lag must reach zero
        )

    async def prepare(self, name: str) -> tuple[Settings, int]:
        """Create the phase's topics and pre-produce the event file into them."""
        if not self.file.exists():
            records = ev.generate(self.plan.events, self.plan.file_leads, self.plan.seed)
            with _bar(self.plan.events, "generate") as bar:
                ev.write_file(self.file, _counted(records, bar))
        settings = self.phase_settings(name)
        await ensure_topics(settings)
        with _bar(self.plan.events, f"produce {name}") as bar:
            total = await produce(
                settings.kafka_bootstrap, settings.topic_prefix, ev.read_file(self.file), bar
            )
        return settings, total

    async def b0(self) -> None:
        settings, total = await self.prepare("b0")
        topics = Topics.from_settings(settings).channel_topics
        group = f"{settings.topic_prefix}b0"
        self.results["b0"] = await run_b0(
            settings.kafka_bootstrap, group, topics, total, self.plan.work, self.plan.timeout
        )

    async def pfaust(self) -> None:
        from stream.bench.pfaust import app_id

        settings, total = await self.prepare("pfaust")
        log = self.plan.work / "logs" / "pfaust.log"
        proc = start_child(["-m", "stream.bench.pfaust"], settings_env(settings), log)

        def alive() -> None:
            if proc.poll() is not None:
                raise BenchError(f"P-faust exited with code {proc.returncode}; see {log}")

        try:
            topics = Topics.from_settings(settings).channel_topics
            async with OffsetWatcher(settings.kafka_bootstrap, app_id(settings), topics) as watch:
                with _bar(total, "P-faust drain") as bar:
                    self.results["pfaust"] = await measure_drain(
                        watch, proc.pid, total, alive=alive, timeout=self.plan.timeout, progress=bar
                    )
        finally:
            stop_child(proc)

    async def worker(self) -> None:
        settings, total = await self.prepare("worker")
        procs = Processes(settings, self.plan.work / "logs" / "worker")
        procs.start("worker")
        try:
            async with _worker_watch(settings) as watch:
                with _bar(total, "worker drain") as bar:
                    self.results["worker"] = await measure_drain(
                        watch,
                        procs.children["worker"].pid,
                        total,
                        alive=procs.check_alive,
                        timeout=self.plan.timeout,
                        progress=bar,
                    )
        finally:
            procs.stop()

    async def _ready(self, settings: Settings, procs: Processes, tail: HandoffTail) -> None:
        """Until a hand-raiser marker is scored: the worker has joined and recovered."""
        tag = f"ready{int(time.time() * 1000)}"
        await produce(settings.kafka_bootstrap, settings.topic_prefix, ev.hand_raiser(tag))
        await tail.wait_key(f"marker-{tag}".encode(), self.plan.timeout, procs.check_alive)

    async def latency(self) -> None:
        """Handoff latency at half the worker's measured drain rate, paced, stamped at send."""
        measured = self.results.get("worker", {}).get("events_per_s")
        rate = measured / 2 if measured else 1000.0
        settings = self.phase_settings("latency")
        await ensure_topics(settings)
        procs = Processes(settings, self.plan.work / "logs" / "latency")
        procs.start("worker")
        topics = Topics.from_settings(settings)
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks=1)
        try:
            async with HandoffTail(settings.kafka_bootstrap, topics.handoff) as tail:
                await self._ready(settings, procs, tail)
                await producer.start()
                start_mono = time.monotonic()
                sent = await _paced(producer, settings, rate, self.plan, procs)
                await asyncio.sleep(3.0)  # stragglers of the last events
                lat = sorted(
                    wall - recv
                    for mono, wall, key, recv in tail.seen
                    if mono >= start_mono and recv and not key.startswith(b"marker-")
                )
        finally:
            await producer.stop()
            procs.stop()
        if not lat:
            raise BenchError("no handoffs during the latency phase; see the worker log")
        self.results["latency"] = {
            "rate_per_s": rate,
            "rate_source": "half the worker drain" if measured else "fixed (no worker phase)",
            "seconds": self.plan.latency_seconds,
            "events": float(sent),
            "handoffs": float(len(lat)),
            "p50_ms": lat[len(lat) // 2],
            "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
            "max_ms": lat[-1],
        }

    async def state(self, memory: bool, restart: bool) -> None:
        """Drain `leads` distinct leads; RSS growth per lead; then SIGKILL and time recovery."""
        settings = self.phase_settings("state")
        await ensure_topics(settings)
        procs = Processes(settings, self.plan.work / "logs" / "state")
        procs.start("worker")
        leads, total = self.plan.leads, 2 * self.plan.leads
        try:
            topics = Topics.from_settings(settings)
            async with HandoffTail(settings.kafka_bootstrap, topics.handoff) as tail:
                await self._ready(settings, procs, tail)
                await asyncio.sleep(1.0)
                base = rss_bytes(procs.children["worker"].pid)
                async with _worker_watch(settings) as watch:
                    self.results["state_drain"] = await self._drain_state(
                        settings, procs, watch, total
                    )
                await asyncio.sleep(2.0)
                after = rss_bytes(procs.children["worker"].pid)
                if memory:
                    self.results["memory"] = {
                        "leads": float(leads),
                        "rss_base_mib": base / MIB,
                        "rss_after_mib": after / MIB,
                        "mib_per_million": (after - base) / MIB / leads * 1_000_000,
                        "extrapolated": leads < 1_000_000,
                        "state_disk_mib": _du(Path(settings.data_dir)) / MIB,
                    }
                if restart:
                    self.results["restart"] = await self._restart(settings, procs, tail, leads)
        finally:
            procs.stop()

    async def _drain_state(
        self, settings: Settings, procs: Processes, watch: OffsetWatcher, total: int
    ) -> dict[str, Any]:
        """Produce the state's events while the worker drains them, timed from its first
        commit of them to zero lag, by thirds: a worker slower than the producer drains a
        backlog all along (the produce rate in the result says whether it was)."""
        before = (await watch.read()).committed  # the ready marker
        records = ev.generate(total, self.plan.leads, self.plan.seed + 100, skew=False)

        async def producing(bar: Any) -> float:
            started = time.monotonic()
            produced = await produce(settings.kafka_bootstrap, settings.topic_prefix, records, bar)
            if produced != total:
                raise BenchError(f"produced {produced} state events of {total}")
            return produced / (time.monotonic() - started)

        with _bar(total, "produce state") as p_bar, _bar(total, "worker state drain") as d_bar:
            drain = measure_drain(
                watch,
                procs.children["worker"].pid,
                before + total,
                alive=procs.check_alive,
                # a million-lead state is 2M events: at least 400 events/s
                timeout=max(self.plan.timeout * 3, total / 400.0),
                progress=d_bar,
                after=before,
                thirds=True,
            )
            producer, drainer = asyncio.create_task(producing(p_bar)), asyncio.create_task(drain)
            both: list[asyncio.Task[Any]] = [producer, drainer]
            try:  # whichever fails first ends the other (a dead worker stops the producing)
                await asyncio.wait(both, return_when=asyncio.FIRST_EXCEPTION)
                for task in both:
                    if task.done():
                        task.result()
                rate, result = producer.result(), drainer.result()
            finally:
                for task in both:
                    task.cancel()
        return {**result, "produce_events_per_s": rate}

    async def _restart(
        self, settings: Settings, procs: Processes, tail: HandoffTail, leads: int
    ) -> dict[str, Any]:
        proc = procs.children["worker"]
        killed = time.monotonic()
        proc.kill()
        proc.wait()
        procs.start("worker")
        started = time.monotonic()
        tag = f"restart{int(time.time() * 1000)}"
        await produce(settings.kafka_bootstrap, settings.topic_prefix, ev.hand_raiser(tag))
        seen = await tail.wait_key(f"marker-{tag}".encode(), self.plan.timeout, procs.check_alive)
        return {
            "leads": float(leads),
            "seconds": seen - killed,
            "from_process_start_s": seen - started,
        }


def _worker_watch(settings: Settings) -> OffsetWatcher:
    topics = Topics.from_settings(settings)
    group = f"{settings.topic_prefix}leadstream-worker"
    return OffsetWatcher(settings.kafka_bootstrap, group, topics.channel_topics, (topics.by_lead,))


async def _paced(
    producer: AIOKafkaProducer, settings: Settings, rate: float, plan: Plan, procs: Processes
) -> int:
    """Send at `rate` events/s for the phase's duration; each event stamped when sent."""
    live = ev.LiveEvents(plan.file_leads, plan.seed + 200)
    sent, start, pending = 0, time.monotonic(), []
    with _bar(plan.latency_seconds, "latency", unit="s") as bar:
        while (elapsed := time.monotonic() - start) < plan.latency_seconds:
            while sent < rate * elapsed:
                r = live.next()
                topic = ev.topic_of(settings.topic_prefix, r.channel)
                pending.append(await producer.send(topic, r.value, key=r.key))
                sent += 1
            if int(elapsed) > bar.n:
                bar.update(int(elapsed) - bar.n)
            procs.check_alive()
            await asyncio.sleep(0.002)
    await asyncio.gather(*pending)
    return sent


def _counted(records: Any, bar: Any) -> Any:
    for i, record in enumerate(records, 1):
        if i % 1000 == 0:
            bar.update(1000)
        yield record


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
