"""docker-compose.yml and deploy/k8s carry no credentials: they come from env or Secrets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from stream.credentials import MIN_TOKEN_CHARS, check_secret
from stream.errors import SettingsError

ROOT = Path(__file__).resolve().parent.parent
SECRET_VARIABLES = (
    "LEADSTREAM_WRITE_KEYS",
    "LEADSTREAM_WEBHOOK_SECRET",
    "LEADSTREAM_LEAD_API_TOKENS",
    "LEADSTREAM_MAILGUN_SIGNING_KEY",
    "LEADSTREAM_GENERIC_WEBHOOK_SECRET",
    "LEADSTREAM_IDENTITY_SECRET",
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


def test_kubernetes_secrets_hold_only_values_the_processes_refuse() -> None:
    """secrets.yaml shows which Secret holds what; a copy applied unchanged must not start."""
    for path in sorted((ROOT / "deploy" / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or path.name == "secrets.yaml":
                continue
            assert doc["kind"] != "Secret", f"{path.name}: Secrets belong in secrets.yaml"
            assert not set(doc.get("data") or {}) & set(SECRET_VARIABLES), path.name
    for doc in yaml.safe_load_all((ROOT / "deploy" / "k8s" / "secrets.yaml").read_text()):
        for variable, value in doc["stringData"].items():
            if variable not in SECRET_VARIABLES or not value:
                continue
            pieces = [p.split("=")[0].split(":")[0] for p in value.split(",")]
            for piece in pieces:
                with pytest.raises(SettingsError, match="placeholder"):
                    check_secret(variable, piece, min_chars=MIN_TOKEN_CHARS)


def test_the_public_collector_service_does_not_carry_the_internal_port() -> None:
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "k8s" / "collector.yaml").read_text()))
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    assert [p["name"] for p in services["collector"]["spec"]["ports"]] == ["http"]
    assert [p["name"] for p in services["collector-internal"]["spec"]["ports"]] == ["internal"]
    assert services["collector-internal"]["spec"]["type"] == "ClusterIP"
