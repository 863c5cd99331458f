"""`leadstream bench`: the generator is deterministic and realistic, the report is complete.

Never timings: a benchmark prints its numbers, tests only check that every number is there.
"""

from __future__ import annotations

import collections
import math
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from stream.bench import events as ev
from stream.bench.baselines import thirds_of
from stream.bench.cli import bench
from stream.bench.collector import Bodies, percentile
from stream.bench.report import TARGETS, build, render
from stream.settings import Settings

DRAINS = ("b0", "pfaust", "worker")
MIB = 1024 * 1024


def test_generator_is_deterministic_skewed_and_realistic() -> None:
    first = list(ev.generate(20_000, 5_000, seed=3))
    assert first == list(ev.generate(20_000, 5_000, seed=3))
    assert first != list(ev.generate(20_000, 5_000, seed=4))
    sizes = sorted(len(r.value) for r in first)
    assert 300 <= sizes[len(sizes) // 2] <= 400
    keys = collections.Counter(r.key for r in first)
    top = sum(n for _, n in keys.most_common(len(keys) // 100))
    assert top > 0.05 * len(first)  # the hottest 1 % of leads carry well over 1 % of events
    types = collections.Counter(orjson.loads(r.value)["type"] for r in first)
    assert types["web.page_view"] > len(first) / 3  # mostly low intent
    assert types["identify"] > 0 and types["sales.demo_requested"] > 0
    for record in first[:500]:
        event = orjson.loads(record.value)
        assert record.key.decode() == (event["user_id"] or event["anonymous_id"])
        assert event["occurred_at"].endswith("Z") and event["received_at"].endswith("Z")


def test_round_robin_visits_every_lead() -> None:
    keys = {r.key for r in ev.generate(2_000, 1_000, seed=1, skew=False)}
    assert len(keys) == 1_000


def test_collector_bodies_are_segment_messages_with_fresh_ids() -> None:
    bodies = Bodies(seed=5, leads=30)
    singles = [orjson.loads(bodies.single()) for _ in range(200)]
    assert {m["type"] for m in singles} == {"track"}
    assert all(m["event"] and m["anonymousId"] and m["timestamp"] for m in singles)
    batch = orjson.loads(bodies.batch(100))
    assert len(batch["batch"]) == 100 and batch["sentAt"].endswith("Z")
    assert {"page", "track", "identify"} <= {m["type"] for m in batch["batch"]}
    ids = [m["messageId"] for m in singles + batch["batch"]]
    assert len(set(ids)) == len(ids)  # the collector's transport dedupe must not skip any


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 51.0 and percentile(values, 0.99) == 100.0
    assert percentile([], 0.5) == 0.0


def test_report_lists_every_target_and_ratio() -> None:
    drain = {"events": 1e5, "seconds": 2.0, "events_per_s": 5e4, "cpu_s_per_1k": 0.04}
    results: dict[str, dict[str, Any]] = {
        "b0": {**drain, "events_per_s": 2e5},
        "pfaust": {**drain, "events_per_s": 4e3},
        "worker": drain,
        "latency": {"rate_per_s": 2.5e4, "rate_source": "x", "seconds": 8.0, "events": 2e5,
                    "handoffs": 900.0, "p50_ms": 9.0, "p99_ms": 80.0, "max_ms": 95.0},
        "memory": {"leads": 1e4, "rss_base_mib": 90.0, "rss_after_mib": 93.0,
                   "mib_per_million": 300.0, "extrapolated": True, "state_disk_mib": 4.0},
        "restart": {"leads": 1e4, "seconds": 4.0, "from_process_start_s": 3.5},
        "state_drain": {**drain, "produce_events_per_s": 9e4,
                        **thirds_of([(0.0, 0, 0), (1.0, 100, MIB), (2.0, 200, 2 * MIB),
                                     (3.5, 300, 3 * MIB)])},
        "collector": {mode: {"route": route, "concurrency": 64.0, "events_per_request": size,
                             "seconds": 3.0, "requests": 900.0, "events": 900.0 * size,
                             "errors": 2.0, "error_kinds": {"HTTP 503": 2},
                             "requests_per_s": 300.0, "events_per_s": 300.0 * size,
                             "p50_ms": 9.0, "p99_ms": 30.0, "max_ms": 40.0, "cpu_s_per_1k": 0.2,
                             "bench_cpu_s_per_1k": 0.1}
                      for mode, route, size in (("single", "/v1/track", 1.0),
                                                ("batch", "/v1/batch", 100.0))},
        "delivery": {"hand_raisers_per_s": 20.0, "background_per_s": 500.0, "seconds": 5.0,
                     "expected": 100.0, "delivered": 99.0, "p50_ms": 40.0, "p99_ms": 90.0,
                     "max_ms": 95.0, "handoff_p50_ms": 30.0, "handoff_p99_ms": 80.0,
                     "request_p50_ms": 5.0, "background_events": 2500.0, "deliveries": 199.0,
                     "rejected": 0.0, "duplicates": 0.0, "errors": 0.0, "error_kinds": {}},
        "pipeline": {"events": 10, "repeats": 3, "cpu_us_per_event": 40.0,
                     **{way: {"cpu_us_per_event": us, "events_per_cpu_s": 1e6 / us,
                              "events_per_s": 9e5 / us, "cpu_us_runs": [us] * 3}
                        for way, us in (("floor", 2.0), ("replay", 40.0),
                                        ("worker_style", 60.0))}},
        "rebalance": {"partitions": 12, "rate_per_s": 300.0, "settle_s": 6.0,
                      **{mode: {"steady_longest_gap_s": 0.2,
                                "cases": [{"case": "crash (SIGKILL)", "longest_pause_s": 7.5,
                                           "median_pause_s": 6.1, "partitions_paused": 6}]}
                         for mode in ("dynamic", "static")}},
    }  # fmt: skip
    header = {"started": "now", "commit": "abc", "mode": "quick", "events": 10, "file_leads": 3,
              "leads": 2, "partitions": 4, "errors": {},
              "machine": {"cores": 2, "ram_gib": 1.0, "cpu": "x", "python": "3.11",
                          "kafka": "4.1.1", "load_avg_at_start": 0.5}}  # fmt: skip
    report = build(header, results, list(results))
    assert report["ratios"]["worker_vs_b0"] == pytest.approx(0.25)
    assert report["ratios"]["worker_vs_pfaust"] == pytest.approx(12.5)
    assert [t["pass"] for t in report["targets"]] == [True] * len(TARGETS)
    text = render(report)
    assert "MISS" not in text
    assert "single /v1/track" in text and "batch  /v1/batch" in text and "HTTP 503 ×2" in text
    assert "delivery: 99/100 hand-raisers delivered" in text
    assert "static membership: crash (SIGKILL) 7.5 s, median 6.1 s (6)" in text
    assert "replay (one partition)" in text and "40.0" in text
    assert "start 100.0 (1 MiB), middle 100.0 (2 MiB), end 66.7 (3 MiB); end / start 0.67" in text


@pytest.mark.parametrize(
    ("marks", "expected"),
    [
        # a steady drain: 100 events/s in each third, RSS read as each third ends
        ([(10.0, 5, 0), (11.0, 105, MIB), (12.0, 205, 2 * MIB), (13.0, 305, 2 * MIB)],
         {"start": 100.0, "middle": 100.0, "end": 100.0, "ratio": 1.0, "rss_end": 2.0}),
        # slowing down as state grows: the last third at a quarter of the first's rate
        ([(0.0, 0, 0), (1.0, 400, MIB), (3.0, 800, 3 * MIB), (5.0, 900, 4 * MIB)],
         {"start": 400.0, "middle": 200.0, "end": 50.0, "ratio": 0.125, "rss_end": 4.0}),
    ],
)  # fmt: skip
def test_thirds_of_a_drain(marks: list[tuple[float, int, int]], expected: dict[str, float]) -> None:
    got = thirds_of(marks)
    assert got["start_events_per_s"] == pytest.approx(expected["start"])
    assert got["middle_events_per_s"] == pytest.approx(expected["middle"])
    assert got["end_events_per_s"] == pytest.approx(expected["end"])
    assert got["end_vs_start"] == pytest.approx(expected["ratio"])
    assert got["rss_end_mib"] == pytest.approx(expected["rss_end"])


@pytest.mark.parametrize(
    "marks",
    [
        [(0.0, 0, 0), (1.0, 100, 0), (2.0, 200, 0)],  # the drain ended before its last third
        [(0.0, 0, 0), (1.0, 100, 0), (1.0, 300, 0), (1.0, 300, 0)],  # one commit, two thirds
    ],
)
def test_thirds_of_too_coarse_a_drain_is_empty(marks: list[tuple[float, int, int]]) -> None:
    assert thirds_of(marks) == {}


def test_pipeline_phase_runs_in_process_without_servers(tmp_path: Path) -> None:
    """`--phases pipeline` measures the pure pipeline and starts no Kafka and no Redis."""
    out = tmp_path / "report.json"
    result = CliRunner().invoke(bench, ["--quick", "--phases", "pipeline", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = orjson.loads(out.read_bytes())
    assert report["header"]["machine"]["kafka"] == "not started"
    phase = report["phases"]["pipeline"]
    assert phase["events"] == 12_000 and phase["repeats"] == 3
    for way in ("floor", "replay", "worker_style"):
        assert phase[way]["cpu_us_per_event"] > 0 and len(phase[way]["cpu_us_runs"]) == 3
        _numbers(phase[way])
    # reading a line is a small part of scoring it
    assert phase["floor"]["cpu_us_per_event"] < phase["replay"]["cpu_us_per_event"]
    target = next(t for t in report["targets"] if t["unit"] == "µs")
    assert target["value"] == phase["replay"]["cpu_us_per_event"]


def _run_bench(base_settings: Settings, tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "report.json"
    result = CliRunner().invoke(
        bench,
        [
            "--quick",
            "--bootstrap",
            base_settings.kafka_bootstrap,
            "--redis-url",
            base_settings.redis_url,
            "--json",
            str(out),
            *args,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "targets" in result.output
    report: dict[str, Any] = orjson.loads(out.read_bytes())
    assert report["header"]["errors"] == {}, report["header"]["errors"]
    assert report["header"]["machine"]["cores"] >= 1
    return report


def _numbers(phase: dict[str, Any]) -> None:
    for key, value in phase.items():
        if isinstance(value, float):
            assert math.isfinite(value) and value >= 0, (key, value)


def test_quick_bench_measures_both_baselines(base_settings: Settings, tmp_path: Path) -> None:
    report = _run_bench(base_settings, tmp_path, "--phases", "b0,pfaust")
    for name in ("b0", "pfaust"):
        phase = report["phases"][name]
        assert phase["events_per_s"] > 0 and phase["cpu_s_per_1k"] >= 0  # 10 ms /proc ticks
        _numbers(phase)


def test_quick_bench_report_is_complete(base_settings: Settings, tmp_path: Path) -> None:
    report = _run_bench(base_settings, tmp_path)
    phases = report["phases"]
    for name in DRAINS:
        # CPU comes from /proc in 10 ms ticks: a quick B0 drain can round to 0, never below.
        assert phases[name]["events_per_s"] > 0 and phases[name]["cpu_s_per_1k"] >= 0
    assert phases["latency"]["handoffs"] > 0 and phases["latency"]["p99_ms"] > 0
    assert phases["memory"]["mib_per_million"] is not None
    assert phases["restart"]["seconds"] > 0
    assert phases["state_drain"]["events"] > 0 and phases["state_drain"]["events_per_s"] > 0
    _http_phases_complete(phases)
    for mode in ("dynamic", "static"):
        cases = phases["rebalance"][mode]["cases"]
        assert [c["case"].split(" ")[0] for c in cases] == [
            "join", "leave", "crash", "rejoin", "restart"
        ]  # fmt: skip
        # A crash stops the dead worker's partitions at least until its session times out.
        crash = cases[2]
        assert crash["longest_pause_s"] > 5.0 and crash["partitions_paused"] > 0, crash
        for case in cases:
            assert 0 <= case["median_pause_s"] <= case["longest_pause_s"], case
        for case in cases:
            _numbers(case)
    for phase in phases.values():
        _numbers(phase)
    assert set(report["ratios"]) >= {"worker_vs_b0", "worker_vs_pfaust"}
    # A quick state drain (10,000 events, checkpoints of up to 5,000) can land in too few
    # commits to tell its thirds apart: then, and only then, that one target has no value.
    missing = [t["target"] for t in report["targets"] if t["value"] is None or t["pass"] is None]
    coarse = "start_events_per_s" not in phases["state_drain"]
    assert missing == (["state drain: last third / first"] if coarse else []), missing


def _http_phases_complete(phases: dict[str, Any]) -> None:
    """Collector and delivery phases: every number there, every request answered 200."""
    for mode in ("single", "batch"):
        r = phases["collector"][mode]
        assert r["errors"] == 0, r["error_kinds"]
        assert r["requests"] > 0 and r["events_per_s"] > 0 and r["p99_ms"] > 0
        assert r["cpu_s_per_1k"] >= 0 and r["events"] == r["requests"] * r["events_per_request"]
        _numbers(r)
    assert phases["collector"]["batch"]["events_per_request"] == 100
    d = phases["delivery"]
    assert d["errors"] == 0, d["error_kinds"]
    assert d["expected"] > 0 and 0 < d["delivered"] <= d["expected"]
    assert d["p99_ms"] > 0 and d["handoff_p99_ms"] > 0 and d["background_events"] > 0
    assert d["rejected"] == 0
    _numbers(d)
