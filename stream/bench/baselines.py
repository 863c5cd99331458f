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

from stream.bench.kafkaio import BenchError, OffsetWatcher, cpu_seconds, rss_bytes


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
    after: int = 0,
    thirds: bool = False,
) -> dict[str, float]:
    """Rate and CPU between the first observed commit and the commit that leaves zero lag.

    Both ends are commit instants, so counting only the records committed between them (not
    from zero) gives an unbiased rate: startup, group join and the first partial commit
    interval fall outside the window. `after`: what the group had committed before this
    drain's records (the window opens at the first commit beyond it). `thirds`: also the rate
    and the process's RSS in each third of the window's records (`thirds_of`), to tell a drain
    that slows down as its state grows from a steady one.
    """
    first = None
    cpu_first = 0.0
    marks: list[tuple[float, int, int]] = []  # (at, committed, RSS) as each third begins
    deadline = time.monotonic() + timeout
    shown = 0
    while time.monotonic() < deadline:
        alive()
        now = await watcher.read()
        if progress is not None and now.committed - after > shown:
            progress.update(min(now.committed - after, total - after) - shown)
            shown = min(now.committed - after, total - after)
        if first is None and now.committed > after:
            first, cpu_first = now, cpu_seconds(pid)
        if first is not None and thirds:
            span = total - first.committed
            while len(marks) < 3 and now.committed >= first.committed + span * len(marks) / 3:
                marks.append((now.at, now.committed, rss_bytes(pid)))
        if first is not None and now is not first and now.lag == 0 and now.committed >= total:
            events = now.committed - first.committed
            if events <= 0:
                raise BenchError("drained within one commit interval: use more --events")
            seconds = now.at - first.at
            cpu = cpu_seconds(pid) - cpu_first
            out = {
                "events": float(events),
                "seconds": seconds,
                "events_per_s": events / seconds,
                "cpu_s_per_1k": cpu / events * 1000.0,
            }
            if thirds:
                out |= thirds_of([*marks, (now.at, now.committed, rss_bytes(pid))])
            return out
        await asyncio.sleep(0.1)
    raise BenchError(f"{watcher.group} did not drain {total} events within {timeout:.0f}s")


THIRDS = ("start", "middle", "end")


def thirds_of(marks: list[tuple[float, int, int]]) -> dict[str, float]:
    """Rate and RSS of each third of a drain, from (instant, committed, RSS bytes) when each
    third began and when the drain ended; `end_vs_start` is the last third's rate over the
    first's. Empty when commits were too coarse to tell the thirds apart (one commit landed
    two thirds at once: a drain of a few checkpoints)."""
    if len(marks) != len(THIRDS) + 1:
        return {}
    out: dict[str, float] = {}
    for name, (at0, done0, _), (at1, done1, rss1) in zip(THIRDS, marks, marks[1:], strict=False):
        if at1 <= at0 or done1 <= done0:
            return {}
        out[f"{name}_events_per_s"] = (done1 - done0) / (at1 - at0)
        out[f"rss_{name}_mib"] = rss1 / (1024 * 1024)  # at the third's end
    out["end_vs_start"] = out["end_events_per_s"] / out["start_events_per_s"]
    return out


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
