"""Generic webhook sink, signed per Standard Webhooks; the body is the handoff's data JSON."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook
from standardwebhooks.webhooks import EmptyWebhookSecretError

from stream.credentials import check_webhook_secrets
from stream.errors import SettingsError
from stream.notify.sinks import Handoff, HttpSink


def signature_header(
    secrets: Sequence[Webhook], msg_id: str, timestamp: datetime, body: str
) -> str:
    """`v1,<base64>` per secret, space separated: receivers accept any one that verifies, so
    during a secret rotation both the old and the new secret's receivers keep working."""
    return " ".join(w.sign(msg_id=msg_id, timestamp=timestamp, data=body) for w in secrets)


class WebhookSink(HttpSink):
    """POST the data JSON with `webhook-id` = ce_id (the same on every retry and replay),
    a fresh `webhook-timestamp` per attempt, and `webhook-signature`.

    CloudEvents HTTP binary-mode headers (`ce-id`, `ce-type`, …) tell receivers the event type
    without parsing the body.
    """

    name = "webhook"

    def __init__(
        self,
        url: str,
        secrets: Sequence[str],
        *,
        timeout: float,
        allow_private: bool,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(url, timeout=timeout, allow_private=allow_private)
        # No placeholder, no short key: the receiver trusts whatever this secret signs.
        check_webhook_secrets(tuple(secrets))
        try:
            self._signers = [Webhook(s) for s in secrets]
        except (ValueError, EmptyWebhookSecretError) as exc:
            raise SettingsError(
                f"LEADSTREAM_WEBHOOK_SECRET: not a whsec_<base64> secret ({exc})"
            ) from None
        self._clock = clock

    def headers(self, handoff: Handoff) -> dict[str, str]:
        now = self._clock()
        body = handoff.value.decode("utf-8")
        headers = {
            "content-type": "application/json",
            "webhook-id": handoff.ce_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature_header(self._signers, handoff.ce_id, now, body),
        }
        for name, value in handoff.extensions.items():
            headers[f"ce-{name}"] = value
        return headers

    async def deliver(self, handoff: Handoff) -> None:
        await self.post(handoff.value, self.headers(handoff))
