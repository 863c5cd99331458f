"""docker-compose.yml and deploy/k8s carry no credentials: they come from env or Secrets."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SECRET_VARIABLES = (
    "LEADSTREAM_WRITE_KEYS",
    "LEADSTREAM_WEBHOOK_SECRET",
    "LEADSTREAM_LEAD_API_TOKENS",
    "LEADSTREAM_MAILGUN_SIGNING_KEY",
    "LEADSTREAM_GENERIC_WEBHOOK_SECRET",
)


def test_compose_takes_credentials_from_the_environment_and_requires_them() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        for variable, value in (service.get("environment") or {}).items():
            if variable in SECRET_VARIABLES:
                assert re.fullmatch(rf"\$\{{{variable}:[?-][^}}]*\}}", str(value)), (name, value)
    env = compose["services"]["collector"]["environment"]
    assert env["LEADSTREAM_WRITE_KEYS"].startswith("${LEADSTREAM_WRITE_KEYS:?")
    assert env["LEADSTREAM_WEBHOOK_SECRET"].startswith("${LEADSTREAM_WEBHOOK_SECRET:?")


def test_kubernetes_manifests_hold_no_secret_values() -> None:
    for path in sorted((ROOT / "deploy" / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            assert doc["kind"] != "Secret", f"{path.name}: create the Secret from your own values"
            assert not set(doc.get("data") or {}) & set(SECRET_VARIABLES), path.name
    collector = next(yaml.safe_load_all((ROOT / "deploy" / "k8s" / "collector.yaml").read_text()))
    container = collector["spec"]["template"]["spec"]["containers"][0]
    assert {"secretRef": {"name": "leadstream"}} in container["envFrom"]
