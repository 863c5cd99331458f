"""Webhook sink: Standard Webhooks signatures a receiver verifies, with rotation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiohttp import web
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from stream.errors import DeliveryError, SettingsError
from stream.notify.sinks.webhook import WebhookSink

from .conftest import SECRET, SECRET_NEW, Receiver, make_handoff


def sink(url: str = "http://127.0.0.1:1/hook", secrets: tuple[str, ...] = (SECRET,)) -> WebhookSink:
    return WebhookSink(url, secrets, timeout=2, allow_private=True)


def test_signature_verifies_with_the_library() -> None:
    handoff = make_handoff("ce-abc")
    headers = sink().headers(handoff)
    assert headers["webhook-id"] == "ce-abc"
    assert headers["webhook-signature"].startswith("v1,")
    data = Webhook(SECRET).verify(handoff.value, headers)
    assert data["lead_id"] == "lead-1"


def test_rotation_sends_both_signatures() -> None:
    handoff = make_handoff("ce-rot")
    headers = sink(secrets=(SECRET_NEW, SECRET)).headers(handoff)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(SECRET).verify(handoff.value, headers)
    Webhook(SECRET_NEW).verify(handoff.value, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "c29tZS1vdGhlci1zZWNyZXQ=").verify(handoff.value, headers)


def test_tampered_body_fails_verification() -> None:
    handoff = make_handoff("ce-t")
    headers = sink().headers(handoff)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(handoff.value.replace(b"lead-1", b"lead-2"), headers)


def test_timestamp_is_fresh_per_attempt_and_id_stable() -> None:
    handoff = make_handoff("ce-s")
    times = iter([datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, 0, 5, tzinfo=UTC)])
    webhook = WebhookSink(
        "http://127.0.0.1:1/", (SECRET,), timeout=1, allow_private=True, clock=lambda: next(times)
    )
    first, second = webhook.headers(handoff), webhook.headers(handoff)
    assert first["webhook-id"] == second["webhook-id"] == "ce-s"
    assert int(second["webhook-timestamp"]) - int(first["webhook-timestamp"]) == 300


def test_cloudevents_headers_passed_on() -> None:
    headers = sink().headers(make_handoff("ce-h"))
    assert headers["ce-type"] == "leadstream.lead.stage_changed.v1"
    assert headers["ce-id"] == "ce-h"
    assert headers["content-type"] == "application/json"


def test_bad_secret_is_a_settings_error() -> None:
    with pytest.raises(SettingsError):
        WebhookSink("http://127.0.0.1:1/", (), timeout=1, allow_private=True)
    with pytest.raises(SettingsError):
        WebhookSink("http://127.0.0.1:1/", ("whsec_",), timeout=1, allow_private=True)


async def test_posts_verifiable_body_to_receiver(receiver_factory) -> None:  # type: ignore[no-untyped-def]
    receiver: Receiver = await receiver_factory()
    webhook = sink(receiver.url)
    handoff = make_handoff("ce-post")
    try:
        await webhook.deliver(handoff)
    finally:
        await webhook.close()
    (seen,) = receiver.seen
    assert seen.body == handoff.value
    Webhook(SECRET).verify(seen.body, seen.headers)


@pytest.mark.parametrize(("status", "retriable"), [(400, False), (503, True), (429, True)])
async def test_receiver_status_becomes_delivery_error(  # type: ignore[no-untyped-def]
    receiver_factory, status: int, retriable: bool
) -> None:
    async def answer(request: web.Request, n: int) -> web.StreamResponse:
        return web.Response(status=status, headers={"Retry-After": "2"})

    receiver: Receiver = await receiver_factory(answer)
    webhook = sink(receiver.url)
    try:
        with pytest.raises(DeliveryError) as info:
            await webhook.deliver(make_handoff())
    finally:
        await webhook.close()
    assert info.value.retriable is retriable
    if status == 429:
        assert info.value.retry_after == 2.0


async def test_connection_refused_is_retriable() -> None:
    webhook = sink("http://127.0.0.1:9/hook")
    try:
        with pytest.raises(DeliveryError) as info:
            await webhook.deliver(make_handoff())
    finally:
        await webhook.close()
    assert info.value.retriable


@pytest.mark.parametrize(
    "secret",
    [
        "whsec_change-me",  # issue 12: was accepted as a 6-byte key
        "whsec_bGVhZHN0cmVhbS1kZW1vLXNlY3JldC0xMjM0NTY3OA==",  # the old public demo secret
        "whsec_c2hvcnQta2V5",  # 9 bytes
    ],
)
def test_placeholder_or_short_secret_stops_the_sink(secret: str) -> None:
    with pytest.raises(SettingsError, match="LEADSTREAM_WEBHOOK_SECRET"):
        WebhookSink("http://127.0.0.1:1/", (secret,), timeout=1, allow_private=True)
