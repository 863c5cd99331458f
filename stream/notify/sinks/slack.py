"""Slack incoming-webhook sink: one readable message per handoff (Block Kit)."""

from __future__ import annotations

from typing import Any

import orjson

from stream.notify.sinks import Handoff, HttpSink, view


def escape(text: str) -> str:
    """Slack mrkdwn control characters (&, <, >) as entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(handoff: Handoff, link_template: str = "") -> dict[str, Any]:
    """`text` (notification fallback) plus blocks: title, facts, top reasons, BANT, link."""
    v = view(handoff, link_template)
    fields = [{"type": "mrkdwn", "text": f"*{k}*\n{escape(val)}"} for k, val in v.facts]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": v.title[:150]}},
        {"type": "section", "fields": fields[:10]},
    ]
    if v.reasons:
        reasons = "\n".join(f"• {escape(r)}" for r in v.reasons)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Why*\n{reasons}"}})
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*BANT* {v.bant}"}})
    if v.link:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open lead"},
                        "url": v.link,
                    }
                ],
            }
        )
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": escape(handoff.ce_id)}]}
    )
    return {"text": v.title, "blocks": blocks}


class SlackSink(HttpSink):
    """POST to a Slack incoming webhook; Slack's 429 carries Retry-After, which retry honours."""

    name = "slack"

    def __init__(
        self, url: str, *, timeout: float, allow_private: bool, link_template: str = ""
    ) -> None:
        super().__init__(url, timeout=timeout, allow_private=allow_private)
        self._link_template = link_template

    async def deliver(self, handoff: Handoff) -> None:
        body = orjson.dumps(slack_message(handoff, self._link_template))
        await self.post(body, {"content-type": "application/json"})
