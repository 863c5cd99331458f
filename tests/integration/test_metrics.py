"""/metrics of the three real processes after real traffic: valid, private, and what deploy/ uses.

The three processes run as subprocesses (tests/integration/conftest.py); one Segment batch
makes a lead hand-raise (so a handoff is delivered to a signed webhook), a bad event in it makes
a dead letter, and a Mailgun bot open is dropped. Ids and emails carry the marker `zzqx`, which
must then appear nowhere in any /metrics output.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from stream.settings import Settings
from tests.e2e.conftest import eventually
from tests.integration.conftest import Pipeline, mailgun_bot_open

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MARKER = "zzqx"  # in every id and email below; never in /metrics
USER_ID = "user-ZZQX-4711"
ANONYMOUS_ID = "anon-ZZQX-4711"
EMAIL = "zzqx4711@corp.example"
METRIC = re.compile(r"\bleadstream_[a-z_]+")


def segment_batch() -> dict[str, Any]:
    """Pricing and product views, identify, a custom event, a bad event, a demo request."""
    who = {"anonymousId": ANONYMOUS_ID, "userId": USER_ID}
    messages: list[dict[str, Any]] = [
        {
            "type": "page",
            "messageId": f"{USER_ID}-1",
            "anonymousId": ANONYMOUS_ID,
            "timestamp": "2026-05-04T09:00:00.000Z",
            "name": "Pricing",
            "properties": {"path": "/pricing", "url": "https://example.com/pricing"},
            "context": {"page": {"path": "/pricing", "url": "https://example.com/pricing"}},
        },
        {
            "type": "page",
            "messageId": f"{USER_ID}-2",
            "anonymousId": ANONYMOUS_ID,
            "timestamp": "2026-05-04T09:00:30.000Z",
            "properties": {"path": "/products/widget", "url": "https://example.com/products/w"},
        },
        {
            "type": "identify",
            "messageId": f"{USER_ID}-3",
            **who,
            "timestamp": "2026-05-04T09:01:00.000Z",
            "traits": {
                "email": EMAIL,
                "seniority": "c_level",
                "buying_role": "decision_maker",
                "employees": 2400,
                "industry": "software",
                "country": "DE",
                "email_type": "business",
            },
        },
        {
            "type": "track",
            "messageId": f"{USER_ID}-4",
            **who,
            "event": f"Custom {USER_ID}",  # maps to no model type: counted as unmapped
            "timestamp": "2026-05-04T09:01:30.000Z",
            "properties": {"email": EMAIL},
        },
        {  # malformed: properties must be an object -> dead letter, batch still 200
            "type": "track",
            "messageId": f"{USER_ID}-5",
            **who,
            "event": "Demo Requested",
            "properties": f"{EMAIL} {USER_ID}",
        },
        {
            "type": "track",
            "messageId": f"{USER_ID}-6",
            **who,
            "event": "Demo Requested",
            "timestamp": "2026-05-04T09:02:00.000Z",
            "properties": {},
        },
    ]
    return {"batch": messages, "sentAt": "2026-05-04T09:02:00.000Z"}


async def send_traffic(http: aiohttp.ClientSession, settings: Settings) -> None:
    base = f"http://{settings.collector_host}:{settings.collector_port}"
    key = next(k for k, (_, kind) in settings.parsed_write_keys().items() if kind == "browser")
    auth = {"Authorization": aiohttp.encode_basic_auth(key)}
    async with http.post(f"{base}/v1/batch", json=segment_batch(), headers=auth) as resp:
        assert resp.status == 200, await resp.text()
    async with http.post(
        f"{base}/v1/webhooks/mailgun", json=mailgun_bot_open(USER_ID, EMAIL)
    ) as resp:
        assert resp.status == 200, await resp.text()


async def scrape(http: aiohttp.ClientSession, settings: Settings) -> dict[str, str]:
    ports = {
        "collector": settings.collector_internal_port,  # /metrics: internal listener only
        "worker": settings.worker_port,
        "notifier": settings.notifier_port,
    }
    texts = {}
    for name, port in ports.items():
        async with http.get(f"http://{settings.collector_host}:{port}/metrics") as resp:
            assert resp.status == 200, name
            texts[name] = await resp.text()
    return texts


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def total(texts: dict[str, str], name: str, **labels: str) -> float:
    return sum(
        value
        for text in texts.values()
        for sample, have, value in samples(text)
        if sample == name and labels.items() <= have.items()
    )


def deploy_metric_names() -> set[str]:
    """leadstream_* names as written in the alert rules and the dashboard's queries."""
    rules = yaml.safe_load((ROOT / "deploy/prometheus/rules.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            exprs.extend(target["expr"] for target in panel.get("targets", []))
            walk(panel.get("panels", []))

    walk(json.loads((ROOT / "deploy/grafana/dashboards/leadstream.json").read_text())["panels"])
    return {name for expr in exprs for name in METRIC.findall(expr)}


def promtool_problems(text: str) -> list[str]:
    """What `promtool check metrics` objects to; [] when it accepts the text.

    promtool exits 1 on text it cannot parse and 3 on lint problems: both count. (The worker
    does not install faust's own Prometheus sensor: it cost ~10 % CPU per event and exports
    per-partition series, one of them with an abbreviated unit.)
    """
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found on PATH: install it with `apt-get install prometheus`")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    output = (result.stdout + result.stderr).splitlines()
    if result.returncode != 0:
        return output or [f"promtool exited with {result.returncode}"]
    return []


def settled(texts: dict[str, str]) -> bool:
    """The notifier has counted the delivery and exported its lag at least once."""
    return (
        total(texts, "leadstream_notifier_deliveries_total", outcome="delivered") > 0
        and total(texts, "leadstream_notifier_event_to_delivery_seconds_count") > 0
        and 'leadstream_consumer_lag_records{role="notifier"' in texts["notifier"]
    )


async def scrape_until_settled(
    http: aiohttp.ClientSession, settings: Settings, timeout: float = 30.0
) -> dict[str, str]:
    """The receiver answers before the notifier counts the delivery: scrape until it has."""
    deadline = time.monotonic() + timeout
    texts = await scrape(http, settings)
    while not settled(texts) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        texts = await scrape(http, settings)
    return texts


async def test_every_process_serves_the_same_health_contract(pipeline: Pipeline) -> None:
    _, _, settings = pipeline
    ports = {
        "collector": settings.collector_port,
        "worker": settings.worker_port,
        "notifier": settings.notifier_port,
    }
    checks = {"collector": {"kafka"}, "worker": {"running", "assigned", "recovered"}}
    checks["notifier"] = {"tasks", "consumer"}
    async with aiohttp.ClientSession() as http:
        for name, port in ports.items():
            base = f"http://{settings.collector_host}:{port}"
            async with http.get(f"{base}/healthz") as resp:
                assert resp.status == 200, name
                alive = await resp.json()
            async with http.get(f"{base}/readyz") as resp:
                assert resp.status == 200, name
                ready = await resp.json()
            assert alive["status"] == "ok" and all(alive["checks"].values()), (name, alive)
            assert ready == {"status": "ready", "checks": dict.fromkeys(checks[name], True)}, name


async def test_metrics_of_all_processes_after_real_traffic(pipeline: Pipeline) -> None:
    _, hook, settings = pipeline
    async with aiohttp.ClientSession() as http:
        await send_traffic(http, settings)

        def handed_off() -> bool:
            return any(
                d["lead_id"] == USER_ID and d["to_stage"] == "sales_ready" for d in hook.deliveries
            )

        try:
            await eventually(handed_off, "the sales_ready handoff at the webhook", timeout=90)
        except AssertionError as exc:  # say how far the traffic got
            texts = await scrape(http, settings)
            progress = {
                name: total(texts, name)
                for name in (
                    "leadstream_events_received_total",
                    "leadstream_worker_events_total",
                    "leadstream_stage_transitions_total",
                    "leadstream_notifier_deliveries_total",
                )
            }
            raise AssertionError(
                f"{exc}; progress {progress}, webhook got {hook.deliveries}"
            ) from exc
        texts = await scrape_until_settled(http, settings)

    for name, text in texts.items():
        problems = promtool_problems(text)
        assert not problems, f"{name}: promtool check metrics: {problems}"
        # No lead id, anonymous id or email in any label value (nor anywhere else).
        assert MARKER not in text.lower(), f"{name} leaks a lead identifier"

    exported = {name for text in texts.values() for name, _, _ in samples(text)}
    missing = deploy_metric_names() - exported
    assert not missing, f"used in deploy/ but exported by no process: {sorted(missing)}"

    for name, labels in (
        ("leadstream_collector_requests_total", {"route": "/v1/batch", "status": "200"}),
        ("leadstream_events_received_total", {"channel": "web"}),
        ("leadstream_events_unmapped_total", {}),
        ("leadstream_dead_letters_total", {"stage": "collector", "reason": "schema_violation"}),
        ("leadstream_collector_events_dropped_total", {"reason": "machine_open"}),
        ("leadstream_stage_transitions_total", {"to_stage": "sales_ready"}),
        ("leadstream_notifier_deliveries_total", {"sink": "webhook", "outcome": "delivered"}),
        ("leadstream_notifier_event_to_delivery_seconds_count", {"lane": "fast"}),
        ("leadstream_event_to_score_seconds_count", {}),
        ("leadstream_event_to_handoff_seconds_count", {}),
    ):
        assert total(texts, name, **labels) > 0, f"{name}{labels} is still zero"

    # The notifier computes its own group's lag; topics are labelled without the test prefix.
    lag = [
        labels
        for name, labels, _ in samples(texts["notifier"])
        if name == "leadstream_consumer_lag_records"
    ]
    assert {"role": "notifier", "topic": "leads.handoff"} in lag
    assert all(settings.topic_prefix not in labels["topic"] for labels in lag)
    # The worker's lag is wired in stream/worker/app.py; where it is exported, it must follow
    # the same labels (role "worker", unprefixed topics).
    worker_lag = [
        labels
        for name, labels, _ in samples(texts["worker"])
        if name == "leadstream_consumer_lag_records"
    ]
    for labels in worker_lag:
        assert labels["role"] == "worker" and not labels["topic"].startswith(settings.topic_prefix)
