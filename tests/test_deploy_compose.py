"""docker-compose.yml publishes only the collector's public port beyond the host's loopback,
Redis needs a password that every process's URL carries, Grafana has no anonymous access
(issue 28, item 6). There is no Docker engine in CI: the file is read as compose would
interpolate it (`${VAR:?message}`, `${VAR:-default}`, `$$`)."""

from __future__ import annotations

import base64
import os
import re
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml

from stream.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = {("collector", 8080)}  # the only (service, container port) every interface may reach
LOOPBACK = "127.0.0.1"
OPERATOR_ENV = {
    "LEADSTREAM_WRITE_KEYS": f"{secrets.token_hex(24)}=website:browser",
    "LEADSTREAM_WEBHOOK_SECRET": "whsec_" + base64.b64encode(os.urandom(32)).decode(),
    "LEADSTREAM_IDENTITY_SECRET": secrets.token_urlsafe(32),
    "REDIS_PASSWORD": secrets.token_hex(32),
    "GRAFANA_ADMIN_PASSWORD": secrets.token_hex(32),
}
_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?::([?-])([^}]*))?\}")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """What compose makes of `value` with `env`: KeyError for a `${VAR:?…}` that is unset."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, kind, text = match.groups()
        if env.get(name):
            return env[name]
        if kind == "?":
            raise KeyError(f"{name}: {text}")
        return text if kind == "-" else ""

    return _VARIABLE.sub(one, value)


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


@pytest.fixture(scope="module")
def compose(raw: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = interpolate(raw, OPERATOR_ENV)
    return result


def bindings(service: dict[str, Any]) -> list[tuple[str, int]]:
    """(host address, container port) of every published port, short or long syntax; an
    address left out means every interface ("0.0.0.0")."""
    found = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            found.append((str(entry.get("host_ip", "0.0.0.0")), int(entry["target"])))
            continue
        parts = str(entry).split(":")
        container = int(parts[-1].split("/")[0].split("-")[0])
        address = ":".join(parts[:-2]) if len(parts) > 2 else "0.0.0.0"
        found.append((address.strip("[]") or "0.0.0.0", container))
    return found


def test_only_the_collectors_public_port_is_published_beyond_loopback(
    compose: dict[str, Any],
) -> None:
    """The finding: Kafka (PLAINTEXT), Redis (no password), the worker's and notifier's
    metrics, Prometheus and an anonymous Grafana were published on every host interface; one
    unauthenticated produce to leads.handoff made the notifier deliver a forged handoff."""
    exposed = set()
    for name, service in compose["services"].items():
        assert service.get("network_mode") != "host", f"{name} would bypass the bindings"
        for address, port in bindings(service):
            if address != LOOPBACK:
                exposed.add((name, port))
    assert exposed == PUBLIC
    assert bindings(compose["services"]["kafka"]) == [(LOOPBACK, 19092)]
    assert bindings(compose["services"]["redis"]) == [(LOOPBACK, 6379)]


def test_kafka_advertises_its_host_listener_on_loopback(compose: dict[str, Any]) -> None:
    env = compose["services"]["kafka"]["environment"]
    external = [
        listener
        for listener in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
        if listener.startswith("EXTERNAL://")
    ]
    assert external == ["EXTERNAL://127.0.0.1:19092"]


def test_redis_requires_a_password_that_every_process_sends(
    raw: dict[str, Any], compose: dict[str, Any]
) -> None:
    redis = compose["services"]["redis"]
    assert redis["environment"]["REDIS_PASSWORD"] == OPERATOR_ENV["REDIS_PASSWORD"]
    script = " ".join(redis["command"])
    assert "requirepass" in script and "$REDIS_PASSWORD" in script
    assert OPERATOR_ENV["REDIS_PASSWORD"] not in script  # never on the command line
    assert "REDISCLI_AUTH" in " ".join(redis["healthcheck"]["test"])  # the health check too
    with pytest.raises(KeyError, match="REDIS_PASSWORD"):  # no password, no stack
        interpolate(raw, {k: v for k, v in OPERATOR_ENV.items() if k != "REDIS_PASSWORD"})
    processes = [
        name for name, service in compose["services"].items() if service.get("build") == "."
    ]
    assert sorted(processes) == ["collector", "notifier", "worker"]
    for name in processes:
        env = compose["services"][name]["environment"]
        settings = Settings.from_env(env)
        assert settings.redis_url == f"redis://:{OPERATOR_ENV['REDIS_PASSWORD']}@redis:6379/0"


def test_grafana_has_no_anonymous_access_and_no_default_password(
    raw: dict[str, Any], compose: dict[str, Any]
) -> None:
    env = compose["services"]["grafana"]["environment"]
    assert str(env.get("GF_AUTH_ANONYMOUS_ENABLED", "false")).lower() == "false"
    assert "GF_AUTH_ANONYMOUS_ORG_ROLE" not in env
    assert str(env.get("GF_USERS_ALLOW_SIGN_UP", "true")).lower() == "false"
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == OPERATOR_ENV["GRAFANA_ADMIN_PASSWORD"]
    with pytest.raises(KeyError, match="GRAFANA_ADMIN_PASSWORD"):  # never admin/admin
        interpolate(raw, {k: v for k, v in OPERATOR_ENV.items() if k != "GRAFANA_ADMIN_PASSWORD"})


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("8080:8080", [("0.0.0.0", 8080)]),
        ("127.0.0.1:8081:8081", [("127.0.0.1", 8081)]),
        ("[::1]:8081:8081/tcp", [("::1", 8081)]),
        ("9090", [("0.0.0.0", 9090)]),
        ({"target": 3000, "published": 3000}, [("0.0.0.0", 3000)]),
        ({"target": 3000, "published": 3000, "host_ip": "127.0.0.1"}, [("127.0.0.1", 3000)]),
    ],
)
def test_bindings_reads_every_port_syntax(entry: Any, expected: list[tuple[str, int]]) -> None:
    """Guard for the check above: each syntax compose accepts is read, none is missed."""
    assert bindings({"ports": [entry]}) == expected
