"""Settings: read from LEADSTREAM_*, flags win, bad values are named with their fix."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from stream.errors import SettingsError
from stream.settings import Settings, describe


def test_environment_and_flags() -> None:
    env = {
        "LEADSTREAM_PARTITIONS": "8",
        "LEADSTREAM_ALLOW_PRIVATE_URLS": "yes",
        "LEADSTREAM_TOPIC_PREFIX": "env.",
    }
    settings = Settings.from_env(env, topic_prefix="flag.")
    assert settings.partitions == 8
    assert settings.allow_private_urls is True
    assert settings.topic_prefix == "flag."


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LEADSTREAM_KAFKA_BOOTSTRAP": "x"}, r"KAFKA_BOOTSTRAP='x': want host:port"),
        ({"LEADSTREAM_PARTITIONS": "many"}, r"PARTITIONS='many': want a int"),
        ({"LEADSTREAM_PARTITIONS": "0"}, r"PARTITIONS=0: want 1 or more"),
        ({"LEADSTREAM_ROCKSDB_MEMTABLES_MIB": "0"}, r"MEMTABLES_MIB=0: want 1 MiB or more"),
        ({"LEADSTREAM_WORKER_STATE_CACHE": "-1"}, r"STATE_CACHE=-1: want 0 or more"),
        ({"LEADSTREAM_REDIS_URL": "localhost"}, r"REDIS_URL='localhost'"),
        ({"LEADSTREAM_WRITE_KEYS": "abc"}, r"entry 1 of 1 has no '=': want key=source"),
        ({"LEADSTREAM_ALLOW_PRIVATE_URLS": "maybe"}, r"want a bool"),
        ({"LEADSTREAM_LOG_LEVEL": "loud"}, r"want debug, info"),
    ],
)
def test_bad_values_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_write_keys_parse() -> None:
    settings = Settings.from_env({"LEADSTREAM_WRITE_KEYS": "k1=web:browser, k2=crm:server"})
    assert settings.parsed_write_keys() == {"k1": ("web", "browser"), "k2": ("crm", "server")}


def test_every_setting_is_documented() -> None:
    rows = describe()
    assert all(name.startswith("LEADSTREAM_") and text for name, _, text in rows)
    assert len({name for name, _, _ in rows}) == len(rows)


def test_unknown_override_is_refused() -> None:
    with pytest.raises(SettingsError, match="unknown settings"):
        Settings.from_env({}, kafka_bootstrapp="x:1")


def test_worker_refuses_a_data_dir_it_cannot_create(tmp_path: Path) -> None:
    from stream.worker.app import run

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    settings = Settings.from_env(
        environ={}, data_dir=str(blocker / "state"), identity_secret=secrets.token_urlsafe(32)
    )
    with pytest.raises(SettingsError, match=r"LEADSTREAM_DATA_DIR=.*cannot create"):
        run(settings)


@pytest.mark.parametrize(
    ("secret", "says"),
    [("", "is empty"), ("leadstream-dev-identity-secret", "placeholder"), ("Ab3xY9", "too short")],
)
def test_worker_refuses_to_start_without_a_real_identity_secret(
    tmp_path: Path, secret: str, says: str
) -> None:
    """Email-only lead ids are a keyed hash: a missing or public key makes them guessable."""
    from stream.worker.app import run

    settings = Settings.from_env(environ={}, data_dir=str(tmp_path), identity_secret=secret)
    with pytest.raises(SettingsError, match=says):
        run(settings)


def test_no_default_credentials() -> None:
    """Outside `leadstream dev`/`demo` nothing is preset: no write key, no webhook secret."""
    settings = Settings.from_env({})
    assert settings.parsed_write_keys() == {}
    assert settings.webhook_secret == "" and settings.lead_api_tokens == ""
    assert settings.webhook_tolerance_seconds == 300


def test_lead_tokens_parse() -> None:
    settings = Settings.from_env({"LEADSTREAM_LEAD_API_TOKENS": "t1:read, t2:admin"})
    assert settings.parsed_lead_api_tokens() == {"t1": "read", "t2": "admin"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LEADSTREAM_LEAD_API_TOKENS": "secret-token:write"}, r"not token:read\|admin"),
        ({"LEADSTREAM_WEBHOOK_TOLERANCE_SECONDS": "0"}, r"TOLERANCE_SECONDS=0.0: want more"),
        ({"LEADSTREAM_HEADER_TIMEOUT_SECONDS": "-1"}, r"HEADER_TIMEOUT_SECONDS=-1.0"),
    ],
)
def test_bad_security_values_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message) as caught:
        Settings.from_env(env)
    assert "secret-token" not in str(caught.value)  # a token is never echoed


# -- issue 28, item 4: a malformed secret is named, never shown ---------------------------------

KEY = "Zq8sT1vK3mW9xB2nR7pL4cF6hJ0dG5yE"  # a well-made write key in a malformed entry
PASSWORD = "hunter2-Zq8sT1vK3mW9"


@pytest.mark.parametrize(
    ("env", "secret", "named"),
    [
        ({"LEADSTREAM_WRITE_KEYS": f"{KEY}:website:browser"}, KEY, "WRITE_KEYS: entry 1 of 1"),
        ({"LEADSTREAM_WRITE_KEYS": f"k1=web:browser,{KEY}=website:browsr"}, KEY, "entry 2 of 2"),
        ({"LEADSTREAM_WRITE_KEYS": f"website:browser={KEY}"}, KEY, "WRITE_KEYS: entry 1"),
        ({"LEADSTREAM_REDIS_URL": f"redis//:{PASSWORD}@redis:6379/0"}, PASSWORD, "***@redis"),
        ({"LEADSTREAM_REDIS_URL": f"redis:/default:{PASSWORD}@redis/0"}, PASSWORD, "REDIS_URL"),
        ({"LEADSTREAM_REDIS_URL": f"http://redis:6379/0?password={PASSWORD}"}, PASSWORD, "?***"),
    ],
)
def test_settings_check_and_the_collector_name_a_malformed_secret_without_showing_it(
    env: dict[str, str], secret: str, named: str
) -> None:
    """The finding: `settings --check` and the collector's startup error printed a malformed
    write key in clear, and a malformed Redis URL with its password."""
    from click.testing import CliRunner

    from stream.cli import main

    check = CliRunner().invoke(main, ["settings", "--check"], env=env)
    assert check.exit_code == 1
    assert named in check.output and secret not in check.output, check.output
    collector = CliRunner().invoke(main, ["collector"], env=env)
    assert collector.exit_code == 1
    assert named in collector.output and secret not in collector.output, collector.output
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert secret not in str(caught.value)


def test_dev_status_shows_the_redis_url_without_its_password(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from stream.cli import main

    env = {
        "LEADSTREAM_DEV_DIR": str(tmp_path),
        "LEADSTREAM_REDIS_URL": f"redis://:{PASSWORD}@127.0.0.1:1/0",
    }
    result = CliRunner().invoke(main, ["dev", "status"], env=env)
    assert "redis://***@127.0.0.1:1/0" in result.output and PASSWORD not in result.output


def test_a_refused_webhook_url_is_named_without_its_secret_path() -> None:
    """A Slack incoming-webhook URL is a credential: its path is the secret."""
    from stream.errors import UnsafeUrlError
    from stream.notify.ssrf import check_url

    url = "http://hooks.slack.com/services/T0000/B0000/XXXXsecretXXXX"
    with pytest.raises(UnsafeUrlError) as caught:
        check_url(url, allow_private=False)
    assert "hooks.slack.com" in str(caught.value) and "XXXXsecretXXXX" not in str(caught.value)
