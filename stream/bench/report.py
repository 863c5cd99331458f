"""The benchmark report: header (machine, commit), phase numbers, ratios, targets pass/miss.

Ratios against B0 and P-faust are the headline because absolute numbers on a shared 2-core
machine move with whatever else runs; contenders measured side by side in one run move together.
"""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

Results = dict[str, dict[str, Any]]

# SPEC.md, "Performance" (and the worker issue's Done when): (label, op, limit, unit, where the
# value is: a phase and its field, or "ratios" and a name)
TARGETS: tuple[tuple[str, str, float, str, str, str], ...] = (
    ("pure pipeline CPU per event (replay)", "<=", 50, "µs", "pipeline", "cpu_us_per_event"),
    ("worker throughput", ">=", 12_000, "events/s", "worker", "events_per_s"),
    ("worker / B0", ">=", 0.12, "×", "ratios", "worker_vs_b0"),
    ("worker / P-faust", ">=", 2.0, "×", "ratios", "worker_vs_pfaust"),
    ("handoff latency p99 at half load", "<=", 100, "ms", "latency", "p99_ms"),
    ("handoff latency p50 at half load", "<=", 20, "ms", "latency", "p50_ms"),
    ("worker memory per million leads", "<=", 350, "MiB", "memory", "mib_per_million"),
    ("state drain: last third / first", ">=", 0.5, "×", "state_drain", "end_vs_start"),
    ("SIGKILL → processing again", "<=", 10, "s", "restart", "seconds"),
)


def machine(kafka_version: str) -> dict[str, Any]:
    """Cores, RAM, CPU model, Python, Kafka: what a reader needs to compare two runs."""
    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    ram = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) * 1024
    return {
        "cores": os.cpu_count() or 0,
        "ram_gib": round(ram / 1024**3, 1),
        "cpu": model,
        "python": platform.python_version(),
        "kafka": kafka_version,
        "load_avg_at_start": os.getloadavg()[0],
    }


def git_commit(repo: Path) -> str:
    """Short commit, `+dirty` with uncommitted changes; read-only git calls."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")


def build(header: dict[str, Any], results: Results, phases: list[str]) -> dict[str, Any]:
    """The whole report as plain data: printed as text, written as JSON."""
    ratios: dict[str, float] = {}
    worker = results.get("worker", {}).get("events_per_s")
    for name in ("b0", "pfaust"):
        base = results.get(name, {}).get("events_per_s")
        if worker and base:
            ratios[f"worker_vs_{name}"] = worker / base
        cpu_w, cpu_b = (results.get(p, {}).get("cpu_s_per_1k") for p in ("worker", name))
        if cpu_w and cpu_b:
            ratios[f"cpu_worker_vs_{name}"] = cpu_w / cpu_b
    targets = []
    for label, op, target, unit, where, field in TARGETS:
        value = ratios.get(field) if where == "ratios" else results.get(where, {}).get(field)
        ok = None if value is None else (value >= target if op == ">=" else value <= target)
        targets.append(
            {"target": label, "op": op, "limit": target, "unit": unit, "value": value, "pass": ok}
        )
    return {
        "header": {**header, "finished": datetime.now(UTC).isoformat(timespec="seconds")},
        "phases_requested": phases,
        "phases": results,
        "ratios": ratios,
        "targets": targets,
    }


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def render(report: dict[str, Any]) -> str:
    """Human-readable report: header, one line per contender or phase, targets."""
    h, p = report["header"], report["phases"]
    m = h["machine"]
    lines = [
        f"leadstream bench — {h['started']}  commit {h['commit']}  mode {h['mode']}",
        f"machine: {m['cores']} cores, {m['ram_gib']} GiB RAM, {m['cpu']}; Python {m['python']}; "
        f"Kafka {m['kafka']}; load average at start {m['load_avg_at_start']:.2f}",
        f"file: {h['events']:,} events over {h['file_leads']:,} leads (Zipf-like), "
        f"partitions {h['partitions']}; state: {h['leads']:,} distinct leads",
        "",
    ]
    if pipe := p.get("pipeline"):
        lines.append(
            f"pure pipeline in process ({pipe['events']:,} events, median of {pipe['repeats']})"
            "      CPU µs/event   events/CPU s   events/s"
        )
        for name, label in (("floor", "floor: orjson.loads per line"),
                            ("replay", "replay (one partition)"),
                            ("worker_style", "worker-style (4 partitions, landings)")):  # fmt: skip
            r = pipe[name]
            lines.append(
                f"  {label:<40} {r['cpu_us_per_event']:>12.1f}   {_num(r['events_per_cpu_s']):>12}"
                f"   {_num(r['events_per_s']):>8}"
            )
        lines.append("")
    lines.append("drain (first commit → zero lag)     events/s   CPU s/1k ev   events")
    for name, label in (("b0", "B0 aiokafka getmany + orjson"), ("pfaust", "P-faust count per key"),
                        ("worker", "leadstream worker")):  # fmt: skip
        r = p.get(name)
        if r is None:
            lines.append(f"  {label:<32} {'not run':>10}")
            continue
        lines.append(
            f"  {label:<32} {_num(r['events_per_s']):>10}   {_num(r['cpu_s_per_1k'], 3):>11}"
            f"   {_num(r['events'])}"
        )
    for key, value in report["ratios"].items():
        lines.append(f"  ratio {key:<28} {value:.3f}")
    if lat := p.get("latency"):
        lines.append(
            f"latency: {lat['handoffs']:.0f} handoffs at {lat['rate_per_s']:,.0f} events/s "
            f"({lat['rate_source']}) for {lat['seconds']:.0f}s: p50 {lat['p50_ms']:.1f} ms, "
            f"p99 {lat['p99_ms']:.1f} ms, max {lat['max_ms']:.1f} ms (consume time − received_at)"
        )
    if sd := p.get("state_drain"):
        lines.append(
            f"state drain: {sd['events']:,.0f} events in {sd['seconds']:,.0f} s = "
            f"{_num(sd['events_per_s'])} events/s, CPU s/1k ev {_num(sd['cpu_s_per_1k'], 3)} "
            f"(produced alongside at {_num(sd['produce_events_per_s'])} events/s)"
        )
        if "end_vs_start" in sd:
            lines.append(
                "  by thirds of its events, events/s (RSS at the third's end): "
                + ", ".join(
                    f"{t} {_num(sd[f'{t}_events_per_s'])} ({sd[f'rss_{t}_mib']:.0f} MiB)"
                    for t in ("start", "middle", "end")
                )
                + f"; end / start {sd['end_vs_start']:.2f}"
            )
        else:
            lines.append("  by thirds: n/a (too few commits to tell the thirds apart)")
    if mem := p.get("memory"):
        lines.append(
            f"memory: RSS {mem['rss_base_mib']:.0f} → {mem['rss_after_mib']:.0f} MiB with "
            f"{mem['leads']:,.0f} leads = {mem['mib_per_million']:.0f} MiB per million leads"
            + (" (extrapolated linearly from fewer leads)" if mem["extrapolated"] else "")
            + f"; state on disk {mem['state_disk_mib']:.0f} MiB"
        )
    if rs := p.get("restart"):
        lines.append(
            f"restart: SIGKILL with {rs['leads']:,.0f} leads → marker scored after "
            f"{rs['seconds']:.1f} s ({rs['from_process_start_s']:.1f} s from process start)"
        )
    lines += _http_lines(p)
    lines += _rebalance_lines(p)
    for name, error in report["header"].get("errors", {}).items():
        lines.append(f"FAILED {name}: {error}")
    lines += ["", "targets"]
    for t in report["targets"]:
        verdict = {True: "pass", False: "MISS", None: "n/a "}[t["pass"]]
        lines.append(
            f"  [{verdict}] {t['target']:<34} {_num(t['value'], 3):>10} {t['unit']:<8}"
            f" (target {t['op']} {_num(float(t['limit']), 2)})"
        )
    return "\n".join(lines)


def _errors(r: dict[str, Any]) -> str:
    kinds = ", ".join(f"{kind} ×{n}" for kind, n in r.get("error_kinds", {}).items())
    return f"{r['errors']:.0f}" + (f" ({kinds})" if kinds else "")


def _http_lines(p: dict[str, Any]) -> list[str]:
    """The collector's HTTP ingest and event → delivered notification latency."""
    lines = []
    if col := p.get("collector"):
        lines.append(
            "collector HTTP ingest (one process; aiohttp client in the bench process, loopback):"
        )
        for mode, r in col.items():
            lines.append(
                f"  {mode:<6} {r['route']:<10} {r['events_per_request']:>3.0f} ev/req, "
                f"{r['concurrency']:.0f} in flight, {r['seconds']:.0f}s: "
                f"{_num(r['requests_per_s'])} req/s, {_num(r['events_per_s'])} events/s, "
                f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms; CPU s/1k ev "
                f"{r['cpu_s_per_1k']:.3f} (bench client {r['bench_cpu_s_per_1k']:.3f}); "
                f"non-200 {_errors(r)}"
            )
    if d := p.get("delivery"):
        lines.append(
            f"delivery: {d['delivered']:.0f}/{d['expected']:.0f} hand-raisers delivered "
            f"({d['hand_raisers_per_s']:.0f}/s + {d['background_per_s']:,.0f} page views/s for "
            f"{d['seconds']:.0f}s): p50 {d['p50_ms']:.1f} ms, p99 {d['p99_ms']:.1f} ms, "
            f"max {d['max_ms']:.1f} ms (Demo Requested request → signed webhook received; "
            f"of which → on leads.handoff p50 {d['handoff_p50_ms']:.1f} ms, "
            f"p99 {d['handoff_p99_ms']:.1f} ms); webhooks {d['deliveries']:.0f}, "
            f"rejected {d['rejected']:.0f}, "
            f"duplicates {d['duplicates']:.0f}; non-200 {_errors(d)}"
        )
    return lines


def _rebalance_lines(p: dict[str, Any]) -> list[str]:
    """Per operator action: the longest any partition stopped producing, and how many did."""
    r = p.get("rebalance")
    if r is None:
        return []
    lines = [
        f"rebalance: workers on {r['partitions']} partitions at {r['rate_per_s']:.0f} events/s, "
        f"{r['settle_s']:.0f}s between actions; longest pause of any partition, median over "
        "the partitions (partitions paused > 1 s)"
    ]
    for mode in ("dynamic", "static"):
        run = r.get(mode)
        if run is None:
            continue
        cases = ", ".join(
            f"{c['case']} {c['longest_pause_s']:.1f} s, median {c.get('median_pause_s', 0):.1f} s "
            f"({c['partitions_paused']})"
            for c in run["cases"]
        )
        lines.append(
            f"  {mode} membership: {cases}; steady longest gap {run['steady_longest_gap_s']:.2f} s"
        )
    return lines
