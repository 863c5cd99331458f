"""deploy/ and docker-compose.yml agree with Settings and with stream/metrics.py."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
import yaml

import stream.metrics  # noqa: F401 - registers every leadstream metric
from stream.settings import Settings, describe

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "leadstream.json"
DEFAULTS = Settings()
PROCESS_PORTS = {
    "collector": DEFAULTS.collector_port,
    "worker": DEFAULTS.worker_port,
    "notifier": DEFAULTS.notifier_port,
}
# /metrics of each process: the collector serves it on its internal listener only.
METRICS_PORTS = {**PROCESS_PORTS, "collector": DEFAULTS.collector_internal_port}
# Every container port of each process (the collector: public ingest and internal listener).
CONTAINER_PORTS = {
    name: {port} | ({DEFAULTS.collector_internal_port} if name == "collector" else set())
    for name, port in PROCESS_PORTS.items()
}
METRIC = re.compile(r"\bleadstream_[a-z_]+")
RECORDED = re.compile(r"\bleadstream:[a-z0-9_:]+")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    # ${VAR:-default} is filled in by compose: judge the default; ${VAR:?message} must come
    # from the operator (credentials): judge it as unset
    env = {k: re.sub(r"\$\{\w+:\?[^}]*\}", "", str(v)) for k, v in env.items()}
    return {k: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(v)) for k, v in env.items()}


def published(service: dict[str, Any]) -> dict[int, int]:
    """container port -> host port."""
    ports = {}
    for entry in service.get("ports", []):
        host, _, container = str(entry).rpartition(":")
        ports[int(container.split("/")[0])] = int(host.rpartition(":")[2])
    return ports


def settings_variables() -> set[str]:
    return {name for name, _, _ in describe()}


def registry_metrics() -> set[str]:
    """Names PromQL may use: counters with `_total`, histograms by base name, gauges as is."""
    names = set()
    for family in prometheus_client.REGISTRY.collect():
        if not family.name.startswith("leadstream_"):
            continue
        names.add(family.name + "_total" if family.type == "counter" else family.name)
    return names


def histogram_bases() -> set[str]:
    return {f.name for f in prometheus_client.REGISTRY.collect() if f.type == "histogram"}


def promql_names(expr: str) -> set[str]:
    names = set()
    histograms = histogram_bases()
    for name in METRIC.findall(expr):
        for suffix in HISTOGRAM_SUFFIXES:
            if name.endswith(suffix) and name.removesuffix(suffix) in histograms:
                name = name.removesuffix(suffix)
        names.add(name)
    return names


def dashboard_exprs() -> Iterator[tuple[str, str]]:
    def walk(panels: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
        for panel in panels:
            for target in panel.get("targets", []):
                yield panel["title"], target["expr"]
            yield from walk(panel.get("panels", []))

    yield from walk(json.loads(DASHBOARD.read_text())["panels"])


def rule_exprs() -> Iterator[tuple[str, str]]:
    for group in yaml.safe_load((PROMETHEUS / "rules.yml").read_text())["groups"]:
        for rule in group["rules"]:
            yield rule.get("record") or rule["alert"], rule["expr"]


# --- docker-compose.yml -----------------------------------------------------------------------


def test_compose_has_every_service(compose: dict[str, Any]) -> None:
    wanted = {"collector", "worker", "notifier", "kafka", "redis", "prometheus", "grafana"}
    assert wanted <= set(compose["services"])
    assert compose["services"]["kafka"]["image"] == "apache/kafka:4.1.1"
    assert compose["services"]["redis"]["image"].startswith("redis:7")


@pytest.mark.parametrize("process", sorted(PROCESS_PORTS))
def test_processes_run_the_leadstream_command(compose: dict[str, Any], process: str) -> None:
    service = compose["services"][process]
    assert service["build"] == "."
    assert service["command"] == [process]
    env = environment(service)
    assert env["LEADSTREAM_KAFKA_BOOTSTRAP"] == "kafka:9092"
    # the password comes from REDIS_PASSWORD (judged unset here; tests/test_deploy_compose.py)
    assert env["LEADSTREAM_REDIS_URL"] == "redis://:@redis:6379/0"
    assert env["LEADSTREAM_COLLECTOR_HOST"] == "0.0.0.0"
    Settings.from_env(env)  # the values pass the same checks as at process start


def test_dockerfile_entrypoint_is_leadstream() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert 'ENTRYPOINT ["leadstream"]' in dockerfile
    # the wheel it builds and installs: tests/test_packaging.py


def test_compose_variables_are_real_settings(compose: dict[str, Any]) -> None:
    known = settings_variables()
    for name, service in compose["services"].items():
        unknown = {v for v in environment(service) if v.startswith("LEADSTREAM_")} - known
        assert not unknown, f"{name}: {sorted(unknown)} are not settings"


@pytest.mark.parametrize("process", sorted(PROCESS_PORTS))
def test_process_ports_are_settings_defaults(compose: dict[str, Any], process: str) -> None:
    assert published(compose["services"][process]) == {p: p for p in CONTAINER_PORTS[process]}


def test_kafka_and_redis_are_reachable_with_default_settings(compose: dict[str, Any]) -> None:
    kafka, redis = compose["services"]["kafka"], compose["services"]["redis"]
    assert DEFAULTS.kafka_port in published(kafka).values()
    assert published(redis) == {6379: DEFAULTS.redis_port}
    env = environment(kafka)
    assert f"EXTERNAL://127.0.0.1:{DEFAULTS.kafka_port}" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert "INTERNAL://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_mounted_files_exist(compose: dict[str, Any]) -> None:
    for name in ("prometheus", "grafana"):
        for volume in compose["services"][name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


# --- Prometheus and Grafana -------------------------------------------------------------------


def test_prometheus_scrapes_the_compose_services(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    assert targets == {f"{name}:{port}" for name, port in METRICS_PORTS.items()}
    assert {t.split(":")[0] for t in targets} <= set(compose["services"])
    assert all(
        job.get("metrics_path", "/metrics") == "/metrics" for job in config["scrape_configs"]
    )
    for rule_file in config["rule_files"]:
        assert (PROMETHEUS / rule_file).exists()


def test_rules_cover_the_required_alerts() -> None:
    exprs = dict(rule_exprs())
    wanted = {
        "LeadstreamDeadLettersRising": "leadstream_dead_letters_total",
        "LeadstreamConsumerLagGrowing": "sum by (role, topic) (leadstream_consumer_lag_records",
        "LeadstreamConsumerLagUnknown": "leadstream_consumer_lag_failures_total",
        "LeadstreamFastLaneDeliverySlow": "leadstream_notifier_event_to_delivery_seconds_bucket",
        "LeadstreamEmailEngagementMostlyMachine": "leadstream_collector_events_dropped_total",
        "LeadstreamNotifierFailures": "leadstream_notifier_deliveries_total",
        "LeadstreamNoEvents": "leadstream_events_received_total",
    }
    for alert, metric in wanted.items():
        assert metric in exprs[alert]
    assert any(name.startswith("leadstream:") for name in exprs), "recording rules"


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def dashboard_panels() -> Iterator[dict[str, Any]]:
    def walk(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in panels:
            yield panel
            yield from walk(panel.get("panels", []))

    yield from walk(dashboard()["panels"])


def recorded() -> set[str]:
    """Names of the recording rules in rules.yml."""
    return {
        rule["record"]
        for group in yaml.safe_load((PROMETHEUS / "rules.yml").read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


def test_dashboard_panels() -> None:
    exprs = "\n".join(expr for _, expr in dashboard_exprs())
    for needle in (
        "leadstream:events_received:rate1m",
        "leadstream:event_to_score_seconds:p99_5m",
        "leadstream:event_to_handoff_seconds:p50_5m",
        "leadstream:consumer_lag_records:sum",
        "leadstream:stage_transitions:rate5m",
        "leadstream:dead_letters:rate5m",
        "sum by (sink, outcome) (rate(leadstream_notifier_deliveries_total",
        "leadstream_notifier_pending_deliveries",
        "sum by (le, lane) (rate(leadstream_notifier_event_to_delivery_seconds_bucket",
        "leadstream:collector_events_dropped:rate5m",
    ):
        assert needle in exprs


def test_dashboard_uses_every_recording_rule() -> None:
    """rules.yml says its recording rules feed the dashboard: each one is on a panel."""
    used = {name for _, expr in dashboard_exprs() for name in RECORDED.findall(expr)}
    assert used == recorded()


def test_dashboard_queries_through_the_datasource_variable() -> None:
    """Imported anywhere, the panels follow ${datasource}; no uid of our Compose stack."""
    data = dashboard()
    assert "leadstream-prometheus" not in DASHBOARD.read_text()
    (variable,) = [v for v in data["templating"]["list"] if v["name"] == "datasource"]
    assert (variable["type"], variable["query"]) == ("datasource", "prometheus")
    assert variable["current"]["value"] == "default"  # the provisioned Prometheus in Compose
    (wanted,) = data["__inputs"]
    assert (wanted["type"], wanted["pluginId"]) == ("datasource", "prometheus")
    for panel in dashboard_panels():
        if panel["type"] == "row":
            continue
        sources = [panel["datasource"], *(t["datasource"] for t in panel["targets"])]
        assert all(d == {"type": "prometheus", "uid": "${datasource}"} for d in sources), panel[
            "title"
        ]


def test_dashboard_has_job_and_instance_variables() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    job, instance = variables["job"], variables["instance"]
    assert job["query"]["query"] == 'label_values(up{job=~"leadstream-.*"}, job)'
    assert instance["query"]["query"] == 'label_values(up{job=~"$job"}, instance)'
    for variable in (job, instance):
        assert variable["datasource"]["uid"] == "${datasource}"
        assert variable["multi"] and variable["includeAll"]


@pytest.mark.parametrize("where, expr", list(dashboard_exprs()), ids=lambda v: str(v)[:50])
def test_dashboard_queries_follow_grafana_conventions(where: str, expr: str) -> None:
    """Raw series are narrowed by $job and $instance, windows are $__rate_interval."""
    windows = re.findall(r"\[([^\]]+)\]", expr)
    assert all(w == "$__rate_interval" for w in windows), f"{where}: fixed window in {expr!r}"
    for match in re.finditer(r"\b(leadstream_[a-z_]+)(\{[^}]*\})?", expr):
        matchers = match.group(2) or ""
        assert 'job=~"$job"' in matchers and 'instance=~"$instance"' in matchers, (
            f"{where}: {match.group(1)} without the job and instance variables"
        )


def test_dashboard_panel_ids_are_unique() -> None:
    ids = [p["id"] for p in dashboard_panels()]
    assert len(ids) == len(set(ids))


def test_grafana_provisioning_loads_the_dashboard(compose: dict[str, Any]) -> None:
    datasources = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"]
    (prometheus,) = datasources
    assert prometheus["type"] == "prometheus" and prometheus["isDefault"] is True
    assert prometheus["url"] == "http://prometheus:9090"
    provider = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/leadstream.yml").read_text()
    )
    path = provider["providers"][0]["options"]["path"]
    mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"])
    assert mounts["./deploy/grafana/dashboards"] == path
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    home = environment(compose["services"]["grafana"])["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{path}/{DASHBOARD.name}"


@pytest.mark.parametrize(
    "where, expr", [*dashboard_exprs(), *rule_exprs()], ids=lambda v: str(v)[:50]
)
def test_every_metric_name_exists(where: str, expr: str) -> None:
    names = promql_names(expr)
    rules = set(RECORDED.findall(expr))
    assert names or rules or "up{" in expr, f"{where}: no leadstream metric in {expr!r}"
    missing = names - registry_metrics()
    assert not missing, f"{where}: {sorted(missing)} are not in stream/metrics.py"
    assert rules <= recorded(), f"{where}: {sorted(rules - recorded())} are not in rules.yml"


def test_metric_name_parsing() -> None:
    names = promql_names(
        "histogram_quantile(0.9, rate(leadstream_event_to_score_seconds_bucket[5m]))"
        " + leadstream_events_received_total + leadstream_not_a_metric_count"
    )
    assert names == {
        "leadstream_event_to_score_seconds",
        "leadstream_events_received_total",
        "leadstream_not_a_metric_count",
    }
    assert "leadstream_not_a_metric_count" not in registry_metrics()


# --- Kubernetes sketch ------------------------------------------------------------------------


def test_kubernetes_manifests_agree_with_settings() -> None:
    known = settings_variables()
    documents = [
        doc
        for path in sorted((DEPLOY / "k8s").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in documents}
    assert {
        ("Deployment", "collector"),
        ("StatefulSet", "worker"),
        ("Deployment", "notifier"),
    } <= kinds
    for doc in documents:
        if doc["kind"] == "ConfigMap":
            assert set(doc["data"]) <= known, doc["metadata"]["name"]
        for container in (
            doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
        ):
            names = {e["name"] for e in container.get("env", [])}
            assert {n for n in names if n.startswith("LEADSTREAM_")} <= known
            if doc["metadata"]["name"] in PROCESS_PORTS:
                ports = {p["containerPort"] for p in container["ports"]}
                assert ports == CONTAINER_PORTS[doc["metadata"]["name"]]
                assert container["args"] == [doc["metadata"]["name"]]


# --- promtool ---------------------------------------------------------------------------------


def test_promtool_accepts_config_and_rules() -> None:
    """Fails (never skips) without promtool: the project's test command installs it."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found on PATH: install it with `apt-get install prometheus`")
    for args in (
        ["check", "config", str(PROMETHEUS / "prometheus.yml")],
        ["check", "rules", str(PROMETHEUS / "rules.yml")],
    ):
        result = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_the_alerts() -> None:
    """deploy/prometheus/rules.test.yml: every alert fires on its case and is quiet on another
    (pending, or a healthy neighbour); annotations are compared as rendered."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found on PATH: install it with `apt-get install prometheus`")
    tests = PROMETHEUS / "rules.test.yml"
    result = subprocess.run(
        [promtool, "test", "rules", str(tests)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    groups = yaml.safe_load(tests.read_text())["tests"]
    cases = [c for group in groups for c in group.get("alert_rule_test", [])]
    alerts = {name for name, expr in rule_exprs() if not name.startswith("leadstream:")}
    assert {c["alertname"] for c in cases if c["exp_alerts"]} == alerts, "a case that fires"
    assert {c["alertname"] for c in cases if not c["exp_alerts"]} == alerts, "a quiet case"
