"""Slack, CRM-task and email sinks: what people read, due dates, SMTP error classes."""

from __future__ import annotations

import smtplib
from datetime import timedelta

import orjson
import pytest
from aiohttp import web

from stream.notify.sinks import Handoff, view
from stream.notify.sinks.crm import CrmTaskSink, crm_task, parse_sla
from stream.notify.sinks.slack import SlackSink, slack_message
from stream.notify.sinks.smtp import email_message, smtp_error

from .conftest import Receiver, make_handoff

LINK = "https://crm.example.com/leads/{lead_id}"


def test_view_has_who_stage_scores_reasons_bant_link() -> None:
    v = view(make_handoff(), LINK)
    facts = dict(v.facts)
    assert facts["Lead"] == "lead-1"
    assert facts["Stage"] == "mql → sales_ready (fast_lane)"
    assert facts["Fit"] == "82.5 (grade A)"
    assert v.reasons == ["web.demo_request (40)", "web.pricing_view (12.5)"]
    assert v.bant == "Budget: yes, Authority: yes, Need: ?, Timeline: no"
    assert v.link == "https://crm.example.com/leads/lead-1"


def test_slack_message_blocks() -> None:
    message = slack_message(make_handoff(), LINK)
    assert message["text"].startswith("P1 handoff: lead lead-1")
    kinds = [b["type"] for b in message["blocks"]]
    assert kinds == ["header", "section", "section", "section", "actions", "context"]
    text = orjson.dumps(message).decode()
    assert "web.demo_request" in text and "BANT" in text and "grade A" in text


def test_slack_escapes_control_characters() -> None:
    message = slack_message(make_handoff(reason="<!channel> & co"))
    assert "&lt;!channel&gt; &amp; co" in orjson.dumps(message).decode()


@pytest.mark.parametrize(
    ("sla", "expected"),
    [
        ("1h", timedelta(hours=1)),
        ("4 h", timedelta(hours=4)),
        ("1 day", timedelta(days=1)),
        ("30m", timedelta(minutes=30)),
        ("PT1H", timedelta(hours=1)),
        ("P1D", timedelta(days=1)),
        ("PT1H30M", timedelta(minutes=90)),
        (3600, timedelta(hours=1)),
        ("soon", None),
        ("P", None),
        (None, None),
    ],
)
def test_parse_sla(sla: object, expected: timedelta | None) -> None:
    assert parse_sla(sla) == expected


def test_crm_task_due_is_time_plus_sla() -> None:
    task = crm_task(make_handoff("ce-crm"), LINK)
    assert task["external_id"] == "ce-crm"
    assert task["queue"] == "ae" and task["priority"] == "P1"
    assert task["due_at"] == "2025-03-01T11:00:00Z"
    assert task["link"] == "https://crm.example.com/leads/lead-1"


async def test_crm_and_slack_post_json(receiver_factory) -> None:  # type: ignore[no-untyped-def]
    receiver: Receiver = await receiver_factory()
    crm = CrmTaskSink(receiver.url, timeout=2, allow_private=True, token="t0k")
    slack = SlackSink(receiver.url, timeout=2, allow_private=True)
    try:
        await crm.deliver(make_handoff("ce-1"))
        await slack.deliver(make_handoff("ce-1"))
    finally:
        await crm.close()
        await slack.close()
    crm_seen, slack_seen = receiver.seen
    assert crm_seen.headers["Authorization"] == "Bearer t0k"
    assert crm_seen.headers["Idempotency-Key"] == "ce-1"
    assert orjson.loads(crm_seen.body)["due_at"] == "2025-03-01T11:00:00Z"
    assert "blocks" in orjson.loads(slack_seen.body)


def test_email_has_plain_and_html_and_stable_message_id() -> None:
    handoff: Handoff = make_handoff("ce-mail")
    msg = email_message(handoff, "from@x.test", ["sales@x.test"], LINK)
    again = email_message(handoff, "from@x.test", ["sales@x.test"], LINK)
    assert msg["Message-ID"] == again["Message-ID"]
    types = [part.get_content_type() for part in msg.iter_parts()]
    assert types == ["text/plain", "text/html"]
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None and "BANT: Budget: yes" in plain.get_content()
    assert html is not None and "<li>web.demo_request (40)</li>" in html.get_content()


@pytest.mark.parametrize(
    ("exc", "retriable"),
    [
        (smtplib.SMTPDataError(451, b"try later"), True),
        (smtplib.SMTPDataError(554, b"rejected"), False),
        (smtplib.SMTPAuthenticationError(535, b"bad auth"), False),
        (smtplib.SMTPRecipientsRefused({"a@x": (550, b"no such user")}), False),
        (smtplib.SMTPRecipientsRefused({"a@x": (450, b"greylisted")}), True),
        (smtplib.SMTPServerDisconnected("gone"), True),
        (ConnectionRefusedError(), True),
        (TimeoutError(), True),
        (smtplib.SMTPNotSupportedError("no STARTTLS"), False),
    ],
)
def test_smtp_error_classes(exc: BaseException, retriable: bool) -> None:
    assert smtp_error(exc).retriable is retriable


async def test_slack_rate_limit_is_retriable(receiver_factory) -> None:  # type: ignore[no-untyped-def]
    async def limited(request: web.Request, n: int) -> web.StreamResponse:
        return web.Response(status=429, headers={"Retry-After": "30"}, text="rate_limited")

    receiver: Receiver = await receiver_factory(limited)
    slack = SlackSink(receiver.url, timeout=2, allow_private=True)
    try:
        with pytest.raises(Exception) as info:
            await slack.deliver(make_handoff())
    finally:
        await slack.close()
    assert getattr(info.value, "retry_after", None) == 30.0
