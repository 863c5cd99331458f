"""Notifier: delivers handoffs from `leads.handoff` to sales sinks; NotifierConfig is its settings.

`NotifierConfig` is built from `Settings` (`from_settings`); fields that `Settings` does not have
yet are read with `getattr` and a default, so they work the day they are added there.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from stream.settings import Settings

DEFAULT_GROUP_ID = "leadstream-notifier"


@dataclass(frozen=True)
class NotifierConfig:
    """Everything the notifier is told; frozen, handed down."""

    redis_prefix: str = "leadstream:"
    """Prefix of every Redis key (idempotency, claims, delivery log)."""
    webhook_url: str = ""
    """Generic Standard Webhooks receiver (empty = not configured)."""
    webhook_secrets: tuple[str, ...] = ()
    """whsec_ secrets; the first signs, all sign during rotation."""
    slack_webhook_url: str = ""
    """Slack incoming-webhook URL (empty = not configured)."""
    crm_task_url: str = ""
    """CRM-task webhook URL (empty = not configured)."""
    crm_token: str = ""
    """Bearer token sent to the CRM-task webhook (empty = none)."""
    smtp_host: str = ""
    """SMTP relay host (empty = email sink not configured)."""
    smtp_port: int = 25
    smtp_from: str = "leadstream@localhost"
    smtp_to: tuple[str, ...] = ()
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    lead_link_template: str = ""
    """Link to a lead in Slack/email/CRM, with `{lead_id}`, e.g. https://crm.example/leads/{lead_id}."""
    routes_path: str = ""
    """Routes file (YAML or JSON); empty = every handoff to the webhook, or the log sink."""
    attempts: int = 6
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 300.0
    timeout_seconds: float = 5.0
    allow_private_urls: bool = False
    fast_lane_concurrency: int = 8
    """Concurrent P1 deliveries."""
    routine_lane_concurrency: int = 8
    """Concurrent P2/P3 deliveries."""
    max_pending: int = 10_000
    """Unsettled handoffs held in memory; beyond it fetching pauses."""
    claim_ttl_seconds: float = 60.0
    """Life of the in-flight claim; renewed before every attempt."""
    delivered_ttl_seconds: int = 30 * 24 * 3600
    """How long a delivered ce_id is remembered (redelivery within it is a no-op)."""
    delivery_log_size: int = 100
    """Entries kept per lead in the delivery log."""
    commit_interval_seconds: float = 1.0
    lag_interval_seconds: float = 15.0
    """How often the notifier exports its consumer group's lag as a metric."""
    group_id: str = DEFAULT_GROUP_ID
    metrics_host: str = "127.0.0.1"
    """Listen address of /metrics and /healthz (0.0.0.0 in containers)."""

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> NotifierConfig:
        """Build from Settings; explicit overrides win (tests, CLI)."""
        secrets = tuple(str(getattr(settings, "webhook_secret", "")).split())
        values: dict[str, Any] = {
            "redis_prefix": settings.redis_prefix,
            "webhook_url": settings.webhook_url,
            "webhook_secrets": secrets,
            "attempts": settings.delivery_attempts,
            "backoff_seconds": settings.delivery_backoff_seconds,
            "timeout_seconds": settings.delivery_timeout_seconds,
            "allow_private_urls": settings.allow_private_urls,
            "group_id": f"{settings.topic_prefix}{DEFAULT_GROUP_ID}",
        }
        # Fields the lead adds to Settings later are picked up by name.
        for f in dataclasses.fields(cls):
            if f.name not in values and hasattr(settings, f.name):
                value = getattr(settings, f.name)
                if f.name == "smtp_to" and isinstance(value, str):
                    value = tuple(v.strip() for v in value.split(",") if v.strip())
                values[f.name] = value
        values.update(overrides)
        return cls(**values)
