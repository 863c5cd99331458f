"""deploy/k8s: valid manifests (offline schemas), safe pods, probes, scraping, scaling, secrets."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from stream.settings import describe
from stream.topics import Topics

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
PROMETHEUS = ROOT / "deploy" / "prometheus"
KUBERNETES_VERSION = "1.33.0"
CUSTOM_KINDS = {"ScaledObject", "ServiceMonitor"}  # CRDs: no schema in kubernetes-validate
PROCESSES = {"collector": "Deployment", "worker": "StatefulSet", "notifier": "Deployment"}
IMAGE_UID = int(re.search(r"--uid (\d+)", (ROOT / "Dockerfile").read_text()).group(1))  # type: ignore[union-attr]
SECRET_SETTINGS = {
    "LEADSTREAM_WRITE_KEYS",
    "LEADSTREAM_WEBHOOK_SECRET",
    "LEADSTREAM_SENDGRID_PUBLIC_KEY",
    "LEADSTREAM_MAILGUN_SIGNING_KEY",
    "LEADSTREAM_GENERIC_WEBHOOK_SECRET",
    "LEADSTREAM_CRM_TOKEN",
    "LEADSTREAM_SMTP_PASSWORD",
    "LEADSTREAM_LEAD_API_TOKENS",
    "LEADSTREAM_IDENTITY_SECRET",
}
# Secrets each process reads: its own, and the identity secret collectors and workers share.
SECRET_REFS = {
    "collector": {"leadstream-collector", "leadstream-identity"},
    "worker": {"leadstream-identity"},
    "notifier": {"leadstream-notifier"},
}


def load_documents() -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.name, doc)
        for path in sorted(K8S.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


DOCUMENTS = load_documents()


def find(kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [d for _, d in DOCUMENTS if d["kind"] == kind and name in (None, d["metadata"]["name"])]


def one(kind: str, name: str) -> dict[str, Any]:
    (doc,) = find(kind, name)
    return doc


def pod_spec(process: str) -> dict[str, Any]:
    spec: dict[str, Any] = one(PROCESSES[process], process)["spec"]["template"]["spec"]
    return spec


def container(process: str) -> dict[str, Any]:
    (only,) = pod_spec(process)["containers"]
    return dict(only)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any connection attempt fails the test: the schemas must come from the package."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access during validation: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield


@pytest.mark.parametrize(
    ("where", "doc"),
    [(w, d) for w, d in DOCUMENTS if d["kind"] not in CUSTOM_KINDS],
    ids=lambda v: v if isinstance(v, str) else f"{v['kind']}/{v['metadata']['name']}",
)
def test_manifest_matches_the_kubernetes_schema(
    where: str, doc: dict[str, Any], no_network: None
) -> None:
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{where}: {doc['kind']}/{doc['metadata']['name']}: {exc.message}")


def test_validation_catches_a_misspelt_field(no_network: None) -> None:
    """The check above can fail: strict mode refuses unknown fields."""
    broken = yaml.safe_load(yaml.safe_dump(one("StatefulSet", "worker")))
    broken["spec"]["template"]["spec"]["securityContext"]["fsgroup"] = 10001
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_only_known_custom_kinds() -> None:
    kinds = {d["kind"] for _, d in DOCUMENTS}
    assert {"ScaledObject", "ServiceMonitor"} <= kinds
    assert kinds - {"Deployment", "StatefulSet", "Service", "ConfigMap", "Secret"} == CUSTOM_KINDS


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_pods_run_as_the_image_user_with_their_volumes_writable(process: str) -> None:
    security = pod_spec(process)["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == IMAGE_UID
    assert security["fsGroup"] == IMAGE_UID  # a fresh PVC is root-owned otherwise
    locked = container(process)["securityContext"]
    assert locked["allowPrivilegeEscalation"] is False
    assert locked["capabilities"]["drop"] == ["ALL"]


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_every_process_has_readiness_and_liveness_probes(process: str) -> None:
    spec = container(process)
    port_names = {p["name"] for p in spec["ports"]}
    assert spec["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert spec["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        if probe in spec:
            assert spec[probe]["httpGet"]["port"] in port_names


def test_worker_state_volume_is_mounted_where_the_worker_writes() -> None:
    spec = container("worker")
    env = {e["name"]: e["value"] for e in spec["env"]}
    mounts = {m["mountPath"] for m in spec["volumeMounts"]}
    assert any(env["LEADSTREAM_DATA_DIR"].startswith(m) for m in mounts)
    assert "startupProbe" in spec  # changelog recovery may take minutes before liveness


# --- scraping ---------------------------------------------------------------------------------


def rule_jobs() -> set[str]:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    return {job["job_name"] for job in config["scrape_configs"]}


def test_service_monitor_gives_the_job_names_of_the_rules() -> None:
    monitor = one("ServiceMonitor", "leadstream")["spec"]
    exists = {
        e["key"] for e in monitor["selector"]["matchExpressions"] if e["operator"] == "Exists"
    }
    selected = [
        s
        for s in find("Service")
        if monitor["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
        and exists <= set(s["metadata"]["labels"])
    ]
    jobs: set[str] = set()
    port_names = {e["port"] for e in monitor["endpoints"]}
    for service in selected:
        job = service["metadata"]["labels"][monitor["jobLabel"]]
        scraped = {p["name"] for p in service["spec"]["ports"]} & port_names
        assert scraped, f"{service['metadata']['name']}: no port the ServiceMonitor scrapes"
        jobs.add(job)
    assert jobs == rule_jobs() == {f"leadstream-{p}" for p in PROCESSES}
    rules = (PROMETHEUS / "rules.yml").read_text()
    pattern = re.search(r'up\{job=~"([^"]+)"\}', rules).group(1)  # type: ignore[union-attr]
    assert all(re.fullmatch(pattern, job) for job in jobs)


def test_kubernetes_scrape_config_gives_the_same_job_names() -> None:
    config = yaml.safe_load((PROMETHEUS / "kubernetes.yml").read_text())
    assert {job["job_name"] for job in config["scrape_configs"]} == rule_jobs()
    for job in config["scrape_configs"]:
        keep = next(r for r in job["relabel_configs"] if r.get("action") == "keep")
        (service,) = [
            s
            for s in find("Service")
            if s["metadata"]["labels"].get("leadstream.dev/job") == job["job_name"]
        ]
        port = service["spec"]["ports"][0]["name"]
        assert keep["regex"] == f"{service['metadata']['labels']['leadstream.dev/job']};{port}"


def test_pods_are_not_scraped_by_annotation_as_well() -> None:
    """Annotation scraping gives job names the rules do not match, and scrapes twice."""
    for process, kind in PROCESSES.items():
        annotations = one(kind, process)["spec"]["template"]["metadata"].get("annotations", {})
        assert not any(k.startswith("prometheus.io/") for k in annotations)


# --- scaling ----------------------------------------------------------------------------------


def test_keda_scales_the_worker_on_lag_within_the_partition_count() -> None:
    scaled = one("ScaledObject", "worker")["spec"]
    partitions = int(one("ConfigMap", "leadstream")["data"]["LEADSTREAM_PARTITIONS"])
    target = scaled["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("StatefulSet", "worker")
    assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"] == partitions
    assert one("StatefulSet", "worker")["spec"]["replicas"] <= partitions
    topics = Topics(prefix="", partitions=partitions)
    consumed = {*topics.channel_topics, topics.by_lead, topics.accounts}
    triggers = scaled["triggers"]
    assert {t["metadata"]["topic"] for t in triggers} == consumed
    for trigger in triggers:
        meta = trigger["metadata"]
        assert trigger["type"] == "kafka"
        assert meta["consumerGroup"] == "leadstream-worker"  # the worker's Faust app id
        assert meta["allowIdleConsumers"] == "false"  # capped at the topic's partitions
        assert (
            meta["bootstrapServers"]
            == one("ConfigMap", "leadstream")["data"]["LEADSTREAM_KAFKA_BOOTSTRAP"]
        )
        assert int(meta["lagThreshold"]) > 0


# --- secrets ----------------------------------------------------------------------------------


def test_credentials_live_in_secrets_each_process_its_own() -> None:
    known = {name for name, _, _ in describe()}
    secrets = {s["metadata"]["name"]: set(s["stringData"]) for s in find("Secret")}
    for keys in secrets.values():
        assert keys <= known
    assert not SECRET_SETTINGS & set(one("ConfigMap", "leadstream")["data"])
    assert {"LEADSTREAM_WRITE_KEYS"} <= secrets["leadstream-collector"]
    assert {"LEADSTREAM_WEBHOOK_SECRET", "LEADSTREAM_WEBHOOK_URL"} <= secrets["leadstream-notifier"]
    assert "LEADSTREAM_WEBHOOK_SECRET" not in secrets["leadstream-collector"]
    for process in PROCESSES:
        refs = {
            ref["secretRef"]["name"] for ref in container(process)["envFrom"] if "secretRef" in ref
        }
        assert refs <= set(secrets)
        assert refs == SECRET_REFS[process]
