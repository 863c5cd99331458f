"""NotifierConfig comes from Settings only: every knob has a LEADSTREAM_* variable."""

from __future__ import annotations

import dataclasses

import pytest

from stream.errors import SettingsError
from stream.notify import NotifierConfig
from stream.settings import Settings, describe, parse_delays

# Every NotifierConfig field: the variable that sets it, a value that is not the default, and
# the field's value it gives. A field added without a variable makes the first test fail.
VARIABLES: dict[str, tuple[str, str, object]] = {
    "redis_prefix": ("LEADSTREAM_REDIS_PREFIX", "x:", "x:"),
    "webhook_url": ("LEADSTREAM_WEBHOOK_URL", "https://hooks.example/a", "https://hooks.example/a"),
    "webhook_secrets": ("LEADSTREAM_WEBHOOK_SECRET", "whsec_a whsec_b", ("whsec_a", "whsec_b")),
    "slack_webhook_url": (
        "LEADSTREAM_SLACK_WEBHOOK_URL",
        "https://s.example/",
        "https://s.example/",
    ),
    "crm_task_url": ("LEADSTREAM_CRM_TASK_URL", "https://crm.example/", "https://crm.example/"),
    "crm_token": ("LEADSTREAM_CRM_TOKEN", "tok", "tok"),
    "smtp_host": ("LEADSTREAM_SMTP_HOST", "mail", "mail"),
    "smtp_port": ("LEADSTREAM_SMTP_PORT", "2525", 2525),
    "smtp_from": ("LEADSTREAM_SMTP_FROM", "a@example.test", "a@example.test"),
    "smtp_to": (
        "LEADSTREAM_SMTP_TO",
        "b@example.test, c@example.test",
        ("b@example.test", "c@example.test"),
    ),
    "smtp_username": ("LEADSTREAM_SMTP_USERNAME", "u", "u"),
    "smtp_password": ("LEADSTREAM_SMTP_PASSWORD", "p", "p"),
    "smtp_starttls": ("LEADSTREAM_SMTP_STARTTLS", "true", True),
    "lead_link_template": (
        "LEADSTREAM_LEAD_LINK_TEMPLATE",
        "https://c/{lead_id}",
        "https://c/{lead_id}",
    ),
    "routes_path": ("LEADSTREAM_ROUTES_PATH", "routes.yaml", "routes.yaml"),
    "sinks": ("LEADSTREAM_NOTIFIER_SINKS", "slack, log", ("slack", "log")),
    "handoffs": ("LEADSTREAM_NOTIFIER_HANDOFFS", "all", "all"),
    "attempts": ("LEADSTREAM_DELIVERY_ATTEMPTS", "4", 4),
    "backoff_seconds": ("LEADSTREAM_DELIVERY_BACKOFF_SECONDS", "0.25", 0.25),
    "max_backoff_seconds": ("LEADSTREAM_MAX_BACKOFF_SECONDS", "12", 12.0),
    "max_retry_after_seconds": ("LEADSTREAM_DELIVERY_MAX_RETRY_AFTER_SECONDS", "60", 60.0),
    "schedule": ("LEADSTREAM_DELIVERY_SCHEDULE", "10s, 1m,1.5h,1d", (10.0, 60.0, 5400.0, 86400.0)),
    "schedule_poll_seconds": ("LEADSTREAM_DELIVERY_SCHEDULE_POLL_SECONDS", "0.5", 0.5),
    "timeout_seconds": ("LEADSTREAM_DELIVERY_TIMEOUT_SECONDS", "2", 2.0),
    "allow_private_urls": ("LEADSTREAM_ALLOW_PRIVATE_URLS", "true", True),
    "fast_lane_concurrency": ("LEADSTREAM_FAST_LANE_CONCURRENCY", "3", 3),
    "routine_lane_concurrency": ("LEADSTREAM_ROUTINE_LANE_CONCURRENCY", "5", 5),
    "max_pending": ("LEADSTREAM_MAX_PENDING", "77", 77),
    "claim_ttl_seconds": ("LEADSTREAM_NOTIFIER_CLAIM_TTL_SECONDS", "30", 30.0),
    "delivered_ttl_seconds": ("LEADSTREAM_NOTIFIER_DELIVERED_TTL_SECONDS", "86400", 86400),
    "delivery_log_size": ("LEADSTREAM_NOTIFIER_DELIVERY_LOG_SIZE", "20", 20),
    "commit_interval_seconds": ("LEADSTREAM_NOTIFIER_COMMIT_INTERVAL_SECONDS", "0.5", 0.5),
    "lag_interval_seconds": ("LEADSTREAM_NOTIFIER_LAG_INTERVAL_SECONDS", "5", 5.0),
    "group_id": ("LEADSTREAM_TOPIC_PREFIX", "staging.", "staging.leadstream-notifier"),
    "metrics_host": ("LEADSTREAM_METRICS_HOST", "0.0.0.0", "0.0.0.0"),
}


def test_every_field_has_a_documented_variable() -> None:
    fields = {f.name for f in dataclasses.fields(NotifierConfig)}
    assert set(VARIABLES) == fields
    documented = {name for name, _, _ in describe()}
    assert {variable for variable, _, _ in VARIABLES.values()} <= documented


def test_each_variable_reaches_its_field() -> None:
    env = {variable: raw for variable, raw, _ in VARIABLES.values()}
    config = NotifierConfig.from_settings(Settings.from_env(env))
    for name, (variable, _, expected) in VARIABLES.items():
        assert getattr(config, name) == expected, variable
    defaults = NotifierConfig.from_settings(Settings())
    for name, (variable, _, expected) in VARIABLES.items():
        assert getattr(defaults, name) != expected, f"{variable}: test value is the default"


def test_defaults_are_the_issue_schedule() -> None:
    config = NotifierConfig.from_settings(Settings())
    assert config.schedule == (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0)
    assert config.attempts == 3 and config.claim_ttl_seconds == 60.0
    assert config.delivered_ttl_seconds == 30 * 24 * 3600


def test_overrides_win_and_unknown_ones_are_refused() -> None:
    config = NotifierConfig.from_settings(Settings(), attempts=1, schedule=())
    assert config.attempts == 1 and config.schedule == ()
    with pytest.raises(SettingsError, match="unknown notifier settings"):
        NotifierConfig.from_settings(Settings(), atempts=1)


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("", ()),
        ("  ", ()),
        ("5s,5m,30m,2h,5h,10h", (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0)),
        ("0.5s", (0.5,)),
        (" 1 s , 2M ", (1.0, 120.0)),
        ("1d", (86400.0,)),
        ("PT90S,1w", (90.0, 604800.0)),
    ],
)
def test_schedule_parses(raw: str, seconds: tuple[float, ...]) -> None:
    assert parse_delays("LEADSTREAM_DELIVERY_SCHEDULE", raw) == seconds


@pytest.mark.parametrize(
    "raw", ["5", "5x", "0s", "-1m", "s", "1s,,2s", ",", "infh", "nans", "1 fortnight", "P"]
)
def test_bad_schedule_is_a_startup_error_naming_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match=r"LEADSTREAM_DELIVERY_SCHEDULE=.*want comma-separated"):
        Settings.from_env({"LEADSTREAM_DELIVERY_SCHEDULE": raw})


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("LEADSTREAM_DELIVERY_ATTEMPTS", "0"),
        ("LEADSTREAM_DELIVERY_SCHEDULE_POLL_SECONDS", "0"),
        ("LEADSTREAM_NOTIFIER_CLAIM_TTL_SECONDS", "-1"),
        ("LEADSTREAM_NOTIFIER_DELIVERY_LOG_SIZE", "0"),
        ("LEADSTREAM_ROUTINE_LANE_CONCURRENCY", "0"),
        ("LEADSTREAM_MAX_BACKOFF_SECONDS", "-2"),
    ],
)
def test_bad_notifier_numbers_are_named(variable: str, raw: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({variable: raw})
