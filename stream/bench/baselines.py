"""The two baselines: B0 (the client's limit) and P-faust (Faust's floor), and the drain timer.

Every contender runs as a child process so that its CPU time (/proc/<pid>/stat) is its own and
the benchmark's polling does not run inside its event loop.

B0 times itself: at 200k+ events/s a drain lasts a few seconds, shorter than a few commit
intervals, so committed offsets are too coarse a clock; it records the instant and its own CPU
time at its first and last record. The Faust contenders (P-faust, the worker) are timed from
outside with `measure_drain`: committed offsets from the first observed progress to zero lag.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from stream.bench.kafkaio import BenchError, OffsetWatcher, cpu_seconds


def start_child(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **env},
        )


def stop_child(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def measure_drain(
    watcher: OffsetWatcher,
    pid: int,
    total: int,
    *,
    alive: Callable[[], None],
    timeout: float,
    progress: Any = None,
) -> dict[str, float]:
    """Rate and CPU between the first observed commit and the commit that leaves zero lag.

    Both ends are commit instants, so counting only the records committed between them (not
    from zero) gives an unbiased rate: startup, group join and the first partial commit
    interval fall outside the window.
    """
    first = None
    cpu_first = 0.0
    deadline = time.monotonic() + timeout
    shown = 0
    while time.monotonic() < deadline:
        alive()
        now = await watcher.read()
        if progress is not None and now.committed > shown:
            progress.update(min(now.committed, total) - shown)
            shown = min(now.committed, total)
        if first is None and now.committed > 0:
            first, cpu_first = now, cpu_seconds(pid)
        elif first is not None and now.lag == 0 and now.committed >= total:
            events = now.committed - first.committed
            if events <= 0:
                raise BenchError("drained within one commit interval: use more --events")
            seconds = now.at - first.at
            cpu = cpu_seconds(pid) - cpu_first
            return {
                "events": float(events),
                "seconds": seconds,
                "events_per_s": events / seconds,
                "cpu_s_per_1k": cpu / events * 1000.0,
            }
        await asyncio.sleep(0.1)
    raise BenchError(f"{watcher.group} did not drain {total} events within {timeout:.0f}s")


def run_b0_child(bootstrap: str, group: str, topics: list[str], total: int, out: Path) -> None:
    """The B0 loop itself (runs in the child): getmany + orjson.loads, nothing else."""
    asyncio.run(_b0(bootstrap, group, topics, total, out))


async def _b0(bootstrap: str, group: str, topics: list[str], total: int, out: Path) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=True,
        auto_commit_interval_ms=1000,  # as Faust's broker_commit_interval
    )
    await consumer.start()
    try:
        # The clock starts when the first batch arrives and that batch is not counted: group
        # join and the first fetch are startup, and prefetched records would inflate the rate.
        count = measured = 0
        t0 = cpu0 = 0.0
        loads = orjson.loads
        while count < total:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            started = count > 0
            for records in batches.values():
                for record in records:
                    loads(record.value)
                count += len(records)
                measured += len(records) if started else 0
            if not started and count:
                t0, cpu0 = time.monotonic(), cpu_seconds(os.getpid())
        seconds, cpu = time.monotonic() - t0, cpu_seconds(os.getpid()) - cpu0
        await consumer.commit()
    finally:
        await consumer.stop()
    if measured == 0:
        raise SystemExit("B0: everything came in the first batch; use more --events")
    result = {
        "events": float(measured),
        "seconds": seconds,
        "events_per_s": measured / seconds,
        "cpu_s_per_1k": cpu / measured * 1000.0,
    }
    out.write_bytes(orjson.dumps(result))  # noqa: ASYNC240 - once, after the measurement


async def run_b0(
    bootstrap: str, group: str, topics: list[str], total: int, work: Path, timeout: float
) -> dict[str, float]:
    """Start the B0 child on pre-produced topics and return what it measured."""
    out = work / f"{group}.json"
    args = ["-m", "stream.bench.baselines", bootstrap, group, ",".join(topics), str(total)]
    proc = start_child([*args, str(out)], {}, work / "logs" / "b0.log")
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None:
            if time.monotonic() > deadline:
                raise BenchError(f"B0 did not finish within {timeout:.0f}s; see {work}/logs")
            await asyncio.sleep(0.2)
    finally:
        stop_child(proc)
    if proc.returncode != 0 or not out.exists():
        raise BenchError(f"B0 exited with code {proc.returncode}; see {work}/logs/b0.log")
    result: dict[str, float] = orjson.loads(out.read_bytes())
    return result


if __name__ == "__main__":
    _bootstrap, _group, _topics, _total, _out = sys.argv[1:6]
    run_b0_child(_bootstrap, _group, _topics.split(","), int(_total), Path(_out))
