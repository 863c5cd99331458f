"""SMTP email sink: plain-text and HTML body, stdlib smtplib in a thread."""

from __future__ import annotations

import asyncio
import hashlib
import html
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate

from stream.errors import DeliveryError
from stream.notify.sinks import Handoff, view


def email_message(
    handoff: Handoff, sender: str, recipients: Sequence[str], link_template: str = ""
) -> EmailMessage:
    """The mail; its Message-ID derives from ce_id, so a mail system can spot a duplicate."""
    v = view(handoff, link_template)
    msg = EmailMessage()
    msg["Subject"] = v.title
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(usegmt=True)
    digest = hashlib.sha256(handoff.ce_id.encode()).hexdigest()[:32]
    msg["Message-ID"] = f"<{digest}@leadstream>"
    msg["X-Leadstream-Event-Id"] = handoff.ce_id
    lines = [v.title, ""]
    lines += [f"{k}: {val}" for k, val in v.facts]
    lines += ["", "Why:"] + [f"  - {r}" for r in v.reasons] + ["", f"BANT: {v.bant}"]
    if v.link:
        lines += ["", v.link]
    msg.set_content("\n".join(lines) + "\n")
    rows = "".join(
        f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(val)}</td></tr>"
        for k, val in v.facts
    )
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in v.reasons)
    link = f"<p><a href='{html.escape(v.link)}'>Open lead</a></p>" if v.link else ""
    msg.add_alternative(
        f"<html><body><h2>{html.escape(v.title)}</h2><table>{rows}</table>"
        f"<h3>Why</h3><ul>{reasons}</ul><p><b>BANT</b> {html.escape(v.bant)}</p>{link}"
        "</body></html>",
        subtype="html",
    )
    return msg


def smtp_error(exc: BaseException) -> DeliveryError:
    """4xx SMTP replies and lost connections are retriable; 5xx replies are not."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        retriable = any(400 <= c < 500 for c in codes)
        return DeliveryError(
            f"SMTP recipients refused: codes {sorted(set(codes))}", retriable=retriable
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        retriable = 400 <= exc.smtp_code < 500
        text = (
            exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else ""
        )
        return DeliveryError(f"SMTP {exc.smtp_code}: {text[:200]}", retriable=retriable)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return DeliveryError(f"SMTP: {exc}", retriable=False)
    if isinstance(exc, smtplib.SMTPServerDisconnected | OSError | TimeoutError):
        return DeliveryError(f"SMTP connection: {type(exc).__name__}: {exc}", retriable=True)
    return DeliveryError(f"SMTP: {type(exc).__name__}: {exc}", retriable=False)


class SmtpSink:
    """Send through an SMTP relay (the operator's own, so not SSRF-checked: often localhost)."""

    name = "email"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        sender: str,
        recipients: Sequence[str],
        timeout: float,
        username: str = "",
        password: str = "",
        starttls: bool = False,
        link_template: str = "",
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.recipients = tuple(recipients)
        self._timeout = timeout
        self._username = username
        self._password = password
        self._starttls = starttls
        self._link_template = link_template

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def deliver(self, handoff: Handoff) -> None:
        msg = email_message(handoff, self.sender, self.recipients, self._link_template)
        try:
            await asyncio.to_thread(self._send, msg)
        except Exception as exc:
            raise smtp_error(exc) from exc

    def _send(self, msg: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self._timeout) as smtp:
            if self._starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self._username:
                smtp.login(self._username, self._password)
            smtp.send_message(msg, self.sender, list(self.recipients))
