"""Every dashboard query and recording rule has data in a real Prometheus scraping the pipeline.

`tests/test_deploy.py` checks that the metric names in deploy/ exist; that did not stop five
panels from staying empty (metrics defined and never updated). Here Debian's `prometheus`
server scrapes the three real processes every second, with the repository's rules.yml loaded,
while a small steady load runs through them. Every `expr` of the Grafana dashboard (panels,
rows, templating) is evaluated the way Grafana would send it, and every recorded series is
queried, through Prometheus' HTTP API: each must return a value above zero (a never-updated
gauge exports 0, an idle histogram gives NaN). What only has data after something in
particular is listed in `ONLY_AFTER`, and the load provokes each of those things.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from stream.dev.process import free_port
from stream.dev.receiver import WebhookReceiver
from stream.settings import Settings
from tests.integration.conftest import Pipeline, mailgun_bot_open, running_pipeline

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "deploy/grafana/dashboards").glob("*.json"))
RULES = ROOT / "deploy/prometheus/rules.yml"
SCRAPE_CONFIG = ROOT / "deploy/prometheus/prometheus.yml"
DATA_WITHIN_SECONDS = 90.0  # from the first round of load; the recording group runs every 30 s
SINK_DELAY_SECONDS = 1.0

# Grafana's built-in interval variables, as it would set them for a Prometheus scraped every
# second: $__rate_interval is max($__interval + scrape interval, 4 x scrape interval).
GRAFANA_INTERVALS = {"__rate_interval": "15s", "__interval": "5s", "__range": "5m"}

# What the load provokes besides page views of anonymous visitors; each round does all of it.
HAND_RAISE = "a known lead with a strong fit requests a demo (stage change, handoff, delivery)"
MERGE = "an identify joins an anonymous visitor's history to a known lead"
UNMAPPED = "an event whose name maps to no model type"
BAD_EVENT = "a malformed event (dead letter)"
BOT_OPEN = "a machine-generated email open (dropped)"
SLOW_SINK = f"a delivery in flight (the test's sales webhook answers after {SINK_DELAY_SECONDS}s)"
PROVOKED = {HAND_RAISE, MERGE, UNMAPPED, BAD_EVENT, BOT_OPEN, SLOW_SINK}

# Panel title or recorded series -> the only thing that gives it data.
ONLY_AFTER: dict[str, str] = {
    "Event → handoff p99": HAND_RAISE,
    "Event → handoff latency p50 / p99": HAND_RAISE,
    "leadstream:event_to_handoff_seconds:p50_5m": HAND_RAISE,
    "leadstream:event_to_handoff_seconds:p99_5m": HAND_RAISE,
    "Stage transitions": HAND_RAISE,
    "leadstream:stage_transitions:rate5m": HAND_RAISE,
    "Deliveries by sink and outcome": HAND_RAISE,
    "Delivery attempt duration p50 / p99": HAND_RAISE,
    "Event → delivery latency p50 / p99 by lane": HAND_RAISE,
    "leadstream:notifier_event_to_delivery_seconds:p99_5m": HAND_RAISE,
    "Handoffs pending": SLOW_SINK,
    "Pending deliveries by lane": SLOW_SINK,
    "Identity merges": MERGE,
    "Unmapped events by source kind": UNMAPPED,
    "Dead letters by stage and reason": BAD_EVENT,
    "leadstream:dead_letters:rate5m": BAD_EVENT,
    "Dropped events by reason": BOT_OPEN,
    "leadstream:collector_events_dropped:rate5m": BOT_OPEN,
}

# Panel title or recorded series -> why 0 is a real reading there (anywhere else 0 means that
# nothing updates the metric). The series must still exist and be a number.
ZERO_IS_DATA: dict[str, str] = {
    "Consumer lag": "a worker and a notifier that keep up lag by 0 records",
    "Consumer lag by role and topic": "a worker and a notifier that keep up lag by 0 records",
    "leadstream:consumer_lag_records:sum": "a worker and a notifier that keep up lag by 0",
}

# deploy/prometheus/prometheus.yml's jobs -> (host, port) setting names of the test's processes.
TARGETS = {
    "leadstream-collector": ("collector_internal_host", "collector_internal_port"),
    "leadstream-worker": ("metrics_host", "worker_port"),
    "leadstream-notifier": ("metrics_host", "notifier_port"),
}


@dataclass(frozen=True)
class Query:
    """One expression to evaluate: where it is written, and the PromQL Prometheus gets."""

    where: str  # for failure messages
    key: str  # panel title or recorded series name: the key of ONLY_AFTER and ZERO_IS_DATA
    expr: str  # as written in deploy/
    promql: str
    label: str | None = None  # templating label_values(): the label that must have values


# -- what deploy/ asks Prometheus ---------------------------------------------------------------


def variable_values(dashboard: dict[str, Any]) -> dict[str, str]:
    """What Grafana substitutes for each template variable with the dashboard as saved: the
    `allValue` of a variable set to All, else its current value."""
    values = dict(GRAFANA_INTERVALS)
    for var in dashboard.get("templating", {}).get("list", []):
        current = var.get("current", {}).get("value")
        if var.get("type") == "datasource":
            continue  # chooses the data source, never part of an expression
        if current in ("$__all", ["$__all"]):
            assert var.get("allValue"), (
                f"variable {var['name']} is set to All without an allValue: Grafana would send "
                "a regex of every value; give it an allValue (as $job and $instance have)"
            )
            values[var["name"]] = var["allValue"]
        else:
            assert isinstance(current, str), f"variable {var['name']}: current value {current!r}"
            values[var["name"]] = current
    return values


VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)\]\]")


def substitute(expr: str, values: dict[str, str], where: str) -> str:
    def one(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in values:
            pytest.fail(f"{where}: `{expr}` uses ${name}, which the test does not know")
        return values[name]

    return VARIABLE.sub(one, expr)


def panels_of(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, also those inside (collapsed) rows."""
    for panel in panels:
        yield panel
        yield from panels_of(panel.get("panels", []))


LABEL_VALUES = re.compile(r"^\s*label_values\((.+),\s*(\w+)\s*\)\s*$", re.S)


def dashboard_queries(path: Path) -> list[Query]:
    dashboard = json.loads(path.read_text())
    values = variable_values(dashboard)
    queries = []
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        raw = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        where = f"{path.name} variable ${var['name']}"
        match = LABEL_VALUES.match(raw)
        assert match, f"{where}: `{raw}` is not label_values(selector, label); teach the test"
        promql = substitute(match.group(1), values, where)
        queries.append(Query(where, var["name"], raw, promql, label=match.group(2)))
    for panel in panels_of(dashboard["panels"]):
        for target in panel.get("targets", []):
            where = f"{path.name} panel {panel.get('id')} {panel['title']!r}"
            assert target.get("expr"), f"{where}: a target without a PromQL expr: {target}"
            promql = substitute(target["expr"], values, where)
            queries.append(Query(where, panel["title"], target["expr"], promql))
    return queries


def rule_queries() -> list[Query]:
    """The recorded series of every recording rule (alerts are rules.test.yml's business)."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [
        Query(f"rules.yml {group['name']}", rule["record"], rule["expr"], rule["record"])
        for group in groups
        for rule in group["rules"]
        if "record" in rule
    ]


def every_expr(node: Any) -> Iterator[str]:
    """Every `expr` anywhere in a dashboard, however it is nested: the cross-check that
    dashboard_queries() missed none (a library panel, a new nesting)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from every_expr(value)
    elif isinstance(node, list):
        for item in node:
            yield from every_expr(item)


def all_queries() -> list[Query]:
    assert DASHBOARDS, "no dashboard in deploy/grafana/dashboards"
    queries = rule_queries() + [q for path in DASHBOARDS for q in dashboard_queries(path)]
    panel_exprs = sorted(q.expr for q in queries if " panel " in q.where)
    written = sorted(e for path in DASHBOARDS for e in every_expr(json.loads(path.read_text())))
    assert panel_exprs == written, "a dashboard expression is not evaluated: extend the walk"
    records = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    assert len([q for q in queries if q.where.startswith("rules.yml")]) == len(
        [r for r in records if "record" in r]
    )
    keys = {q.key for q in queries}
    stale = (ONLY_AFTER.keys() | ZERO_IS_DATA.keys()) - keys
    assert not stale, f"ONLY_AFTER/ZERO_IS_DATA name no panel or rule: {sorted(stale)}"
    assert set(ONLY_AFTER.values()) <= PROVOKED, "an ONLY_AFTER condition the load never makes"
    return queries


def test_every_dashboard_expression_and_rule_is_found() -> None:
    """Without servers: the walk finds every expression, and the lists name real panels."""
    queries = all_queries()
    assert {q.key for q in queries} >= {"Events/s", "leadstream:events_received:rate1m"}
    assert not [q for q in queries if "$" in q.promql], "a variable was left unsubstituted"


# -- a real Prometheus --------------------------------------------------------------------------


def prometheus_config(settings: Settings, tmp_path: Path) -> Path:
    """deploy/prometheus/prometheus.yml with its jobs and labels, the targets rewritten to the
    test's ports, scrapes every second and the repository's rules file."""
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(RULES)]
    for job in config["scrape_configs"]:
        assert job["job_name"] in TARGETS, f"prometheus.yml job {job['job_name']}: add to TARGETS"
        host, port = (getattr(settings, name) for name in TARGETS[job["job_name"]])
        for static in job["static_configs"]:
            static["targets"] = [f"{host}:{port}"]
    assert {job["job_name"] for job in config["scrape_configs"]} == TARGETS.keys()
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_prometheus(
    binary: str, config: Path, port: int, log_path: Path
) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={log_path.parent / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
async def prometheus(loaded: Pipeline, tmp_path: Path) -> AsyncIterator[str]:
    """Debian's prometheus server scraping the pipeline; its base URL once it is ready."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(
            "the prometheus server is not on PATH: install Debian's package with "
            "`apt-get install prometheus` (scripts/test.sh does so before the tests)"
        )
    _, _, settings = loaded
    port = free_port()
    log_path = tmp_path / "prometheus.log"
    proc = start_prometheus(binary, prometheus_config(settings, tmp_path), port, log_path)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        async with aiohttp.ClientSession() as http:
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"prometheus exited ({proc.returncode}): {log_path.read_text()}")
                try:
                    async with http.get(f"{url}/-/ready") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline, f"prometheus not ready: {log_path.read_text()}"
                await asyncio.sleep(0.2)
        yield url
    finally:
        stop(proc)


# -- the pipeline under load ----------------------------------------------------------------


class SlowReceiver(WebhookReceiver):
    """The signed sales webhook, answering after a pause: deliveries are pending meanwhile."""

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()  # kept by aiohttp for the handler; a body is never left unread
        await asyncio.sleep(SINK_DELAY_SECONDS)
        return await super().handle(request)


@pytest.fixture
async def loaded(settings: Settings, tmp_path: Path) -> AsyncIterator[Pipeline]:
    hook = SlowReceiver(settings.webhook_secret.split()[0])
    async with running_pipeline(settings, hook, tmp_path / "logs") as started:
        yield started


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def round_of_traffic(n: int) -> list[dict[str, Any]]:
    """One Segment batch: a page view of a new visitor, then every provocation but the bot
    open (a webhook of its own) and the slow sink (the receiver's)."""
    anonymous_id, user_id = f"anon-prom-{n}", f"user-prom-{n}"
    who = {"anonymousId": anonymous_id, "userId": user_id}
    traits = {
        "email": f"prom{n}@corp.example",
        "seniority": "c_level",
        "buying_role": "decision_maker",
        "employees": 2400,
        "industry": "software",
        "country": "DE",
        "email_type": "business",
    }
    return [
        {  # the baseline: an anonymous page view
            "type": "page",
            "messageId": f"{user_id}-page",
            "anonymousId": anonymous_id,
            "timestamp": now(),
            "name": "Pricing",
            "properties": {"path": "/pricing", "url": "https://example.com/pricing"},
        },
        {  # MERGE
            "type": "identify",
            "messageId": f"{user_id}-identify",
            **who,
            "timestamp": now(),
            "traits": traits,
        },
        {  # UNMAPPED
            "type": "track",
            "messageId": f"{user_id}-custom",
            **who,
            "event": "Custom Prometheus Test",
            "timestamp": now(),
            "properties": {},
        },
        {  # BAD_EVENT: properties must be an object
            "type": "track",
            "messageId": f"{user_id}-bad",
            **who,
            "event": "Demo Requested",
            "properties": "not an object",
        },
        {  # HAND_RAISE
            "type": "track",
            "messageId": f"{user_id}-demo",
            **who,
            "event": "Demo Requested",
            "timestamp": now(),
            "properties": {},
        },
    ]


async def drive_load(settings: Settings) -> None:
    """A round a second until cancelled; a refused request fails the test."""
    base = f"http://{settings.collector_host}:{settings.collector_port}"
    key = next(k for k, (_, kind) in settings.parsed_write_keys().items() if kind == "browser")
    auth = {"Authorization": aiohttp.encode_basic_auth(key)}
    async with aiohttp.ClientSession() as http:
        for n in itertools.count():
            batch = {"batch": round_of_traffic(n), "sentAt": now()}
            async with http.post(f"{base}/v1/batch", json=batch, headers=auth) as resp:
                assert resp.status == 200, await resp.text()
            bot_open = mailgun_bot_open(f"prom-{n}", f"prom{n}@corp.example")  # BOT_OPEN
            async with http.post(f"{base}/v1/webhooks/mailgun", json=bot_open) as resp:
                assert resp.status == 200, await resp.text()
            await asyncio.sleep(1.0)


# -- evaluation -----------------------------------------------------------------------------


def numbers(data: dict[str, Any]) -> list[float]:
    """The values of an instant query's result (vector or scalar)."""
    if data["resultType"] == "scalar":
        return [float(data["result"][1])]
    return [float(sample["value"][1]) for sample in data["result"]]


def has_data(query: Query, data: dict[str, Any]) -> bool:
    if query.label is not None:  # a template variable: its label must have values
        return any(sample["metric"].get(query.label) for sample in data["result"])
    values = [v for v in numbers(data) if not math.isnan(v)]
    if query.key in ZERO_IS_DATA:
        return bool(values)
    return any(v > 0 for v in values)


async def instant(http: aiohttp.ClientSession, url: str, promql: str) -> dict[str, Any]:
    async with http.get(f"{url}/api/v1/query", params={"query": promql}) as resp:
        body: dict[str, Any] = await resp.json()
    if body.get("status") != "success":
        pytest.fail(f"Prometheus refused `{promql}`: {body.get('errorType')}: {body.get('error')}")
    data: dict[str, Any] = body["data"]
    return data


async def health(http: aiohttp.ClientSession, url: str) -> tuple[list[str], list[str]]:
    """Targets not up, and rules whose last evaluation failed."""
    async with http.get(f"{url}/api/v1/targets") as resp:
        targets = (await resp.json())["data"]["activeTargets"]
    async with http.get(f"{url}/api/v1/rules") as resp:
        groups = (await resp.json())["data"]["groups"]
    down = [f"{t['labels']['job']}: {t['health']} {t['lastError']}" for t in targets]
    down = [d for d, t in zip(down, targets, strict=True) if t["health"] != "up"]
    broken = [
        f"{rule.get('name')}: {rule.get('lastError')}"
        for group in groups
        for rule in group["rules"]
        if rule.get("health") == "err"
    ]
    return down, broken


async def test_every_dashboard_expression_and_rule_has_data(
    loaded: Pipeline, prometheus: str
) -> None:
    procs, _, settings = loaded
    queries = all_queries()
    last: dict[Query, Any] = {}
    waiting = list(queries)
    load = asyncio.create_task(drive_load(settings))
    try:
        deadline = time.monotonic() + DATA_WITHIN_SECONDS
        async with aiohttp.ClientSession() as http:
            while waiting and time.monotonic() < deadline:
                await asyncio.sleep(1.0)
                if load.done():
                    load.result()  # a refused request: its assertion
                    pytest.fail("the load stopped")
                procs.check_alive()
                for query in list(waiting):
                    data = await instant(http, prometheus, query.promql)
                    last[query] = data["result"]
                    if has_data(query, data):
                        waiting.remove(query)
            down, broken = await health(http, prometheus)
    finally:
        load.cancel()
        await asyncio.gather(load, return_exceptions=True)
    assert not broken, f"recording or alert rules fail to evaluate: {broken}"
    assert not waiting, "\n".join(
        [
            f"{len(waiting)} of {len(queries)} queries have no data after "
            f"{DATA_WITHIN_SECONDS:.0f}s of load (targets down: {down or 'none'}; process logs "
            f"in {procs.log_dir}):",
            *(
                f"- {q.where}: `{q.expr}`"
                + (f" (data only after {ONLY_AFTER[q.key]})" if q.key in ONLY_AFTER else "")
                + f"; last result {last.get(q)}"
                for q in waiting
            ),
        ]
    )
