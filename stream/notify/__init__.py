"""Notifier: delivers handoffs from `leads.handoff` to sales sinks; NotifierConfig is its settings.

`NotifierConfig` is derived from `Settings` only (`from_settings`, every field mapped by hand):
the one place where a value and its default live is `stream/settings.py`, so every knob here has
a `LEADSTREAM_*` variable and shows in `leadstream settings`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stream.errors import SettingsError
from stream.settings import Settings, comma_list

GROUP_ID = "leadstream-notifier"
"""The consumer group, after LEADSTREAM_TOPIC_PREFIX (`leadstream demo` reads its lag)."""


@dataclass(frozen=True)
class NotifierConfig:
    """Everything the notifier is told; frozen, handed down. No defaults: see `from_settings`."""

    redis_prefix: str
    """Prefix of every Redis key (idempotency, claims, schedule, delivery log)."""
    webhook_url: str
    """Generic Standard Webhooks receiver (empty = not configured)."""
    webhook_secrets: tuple[str, ...]
    """whsec_ secrets; the first signs, all sign during rotation."""
    slack_webhook_url: str
    """Slack incoming-webhook URL (empty = not configured)."""
    crm_task_url: str
    """CRM-task webhook URL (empty = not configured)."""
    crm_token: str
    """Bearer token sent to the CRM-task webhook (empty = none)."""
    smtp_host: str
    """SMTP relay host (empty = email sink not configured)."""
    smtp_port: int
    smtp_from: str
    smtp_to: tuple[str, ...]
    smtp_username: str
    smtp_password: str
    smtp_starttls: bool
    lead_link_template: str
    """Link to a lead in Slack/email/CRM, with `{lead_id}`, e.g. https://crm.example/leads/{lead_id}."""
    routes_path: str
    """Routes file (YAML or JSON); empty = every handoff to `sinks`, else to the webhook."""
    sinks: tuple[str, ...]
    """Sinks of every handoff without a routes file; empty = the webhook, which must be set."""
    handoffs: str
    """`sales`: sales sinks get sales transitions only (routes.is_sales); `all`: every one."""
    attempts: int
    """Quick attempts in process (the first included) before the handoff is parked."""
    backoff_seconds: float
    """Bound of the first quick retry's delay; doubles per retry (full jitter)."""
    max_backoff_seconds: float
    """Longest quick pause; a Retry-After beyond it parks the handoff instead."""
    max_retry_after_seconds: float
    """Longest Retry-After honoured (quick pause or scheduled due time)."""
    schedule: tuple[float, ...]
    """Delays (seconds) of the persisted retries after the quick ones; empty = none."""
    schedule_poll_seconds: float
    """How often due scheduled deliveries are looked for."""
    timeout_seconds: float
    allow_private_urls: bool
    fast_lane_concurrency: int
    """Concurrent P1 deliveries (and as many for scheduled P1 retries)."""
    routine_lane_concurrency: int
    """Concurrent P2/P3 deliveries (and as many for scheduled P2/P3 retries)."""
    max_pending: int
    """Unsettled handoffs held in memory; beyond it fetching pauses."""
    claim_ttl_seconds: float
    """Life of the in-flight claim; renewed before every attempt."""
    delivered_ttl_seconds: int
    """How long a delivered ce_id is remembered (redelivery within it is a no-op)."""
    delivery_log_size: int
    """Entries kept per lead in the delivery log."""
    commit_interval_seconds: float
    lag_interval_seconds: float
    """How often the notifier exports its consumer group's lag as a metric."""
    group_id: str
    """Consumer group: LEADSTREAM_TOPIC_PREFIX + `leadstream-notifier`."""
    metrics_host: str
    """Listen address of /metrics and /healthz (0.0.0.0 in containers)."""

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> NotifierConfig:
        """Build from Settings; explicit overrides win (tests, CLI)."""
        values: dict[str, Any] = {
            "redis_prefix": settings.redis_prefix,
            "webhook_url": settings.webhook_url,
            "webhook_secrets": tuple(settings.webhook_secret.split()),
            "slack_webhook_url": settings.slack_webhook_url,
            "crm_task_url": settings.crm_task_url,
            "crm_token": settings.crm_token,
            "smtp_host": settings.smtp_host,
            "smtp_port": settings.smtp_port,
            "smtp_from": settings.smtp_from,
            "smtp_to": comma_list(settings.smtp_to),
            "smtp_username": settings.smtp_username,
            "smtp_password": settings.smtp_password,
            "smtp_starttls": settings.smtp_starttls,
            "lead_link_template": settings.lead_link_template,
            "routes_path": settings.routes_path,
            "sinks": comma_list(settings.notifier_sinks),
            "handoffs": settings.notifier_handoffs,
            "attempts": settings.delivery_attempts,
            "backoff_seconds": settings.delivery_backoff_seconds,
            "max_backoff_seconds": settings.max_backoff_seconds,
            "max_retry_after_seconds": settings.delivery_max_retry_after_seconds,
            "schedule": settings.parsed_delivery_schedule(),
            "schedule_poll_seconds": settings.delivery_schedule_poll_seconds,
            "timeout_seconds": settings.delivery_timeout_seconds,
            "allow_private_urls": settings.allow_private_urls,
            "fast_lane_concurrency": settings.fast_lane_concurrency,
            "routine_lane_concurrency": settings.routine_lane_concurrency,
            "max_pending": settings.max_pending,
            "claim_ttl_seconds": settings.notifier_claim_ttl_seconds,
            "delivered_ttl_seconds": settings.notifier_delivered_ttl_seconds,
            "delivery_log_size": settings.notifier_delivery_log_size,
            "commit_interval_seconds": settings.notifier_commit_interval_seconds,
            "lag_interval_seconds": settings.notifier_lag_interval_seconds,
            "group_id": f"{settings.topic_prefix}{GROUP_ID}",
            "metrics_host": settings.metrics_host,
        }
        unknown = set(overrides) - set(values)
        if unknown:
            raise SettingsError(f"unknown notifier settings {sorted(unknown)}")
        values.update(overrides)
        return cls(**values)
