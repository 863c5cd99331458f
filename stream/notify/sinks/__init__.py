"""Sinks: what a handoff is, what a sink does with it, and the shared HTTP and log sinks."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import orjson

from stream.errors import DeliveryError, InvalidJsonError, SchemaViolationError
from stream.notify.retry import exception_error, status_error
from stream.notify.ssrf import check_url, safe_session

log = logging.getLogger(__name__)

USER_AGENT = "leadstream-notifier/0.1"


@dataclass(frozen=True)
class Handoff:
    """One record of `leads.handoff`, decoded once for every sink."""

    ce_id: str
    ce_type: str
    lead_id: str
    priority: str
    """P1, P2 or P3 (ce_priority, else data.route.priority, else P3)."""
    to_stage: str
    from_stage: str
    queue: str | None
    time: str
    """ce_time, RFC 3339."""
    received_at: str | None
    """ce_receivedat: collector receipt of the triggering event, for latency."""
    value: bytes
    """The data JSON exactly as on the topic: the webhook body and the dead letter's value."""
    data: Mapping[str, Any]
    key: bytes | None
    headers: Sequence[tuple[str, bytes]]
    topic: str
    partition: int
    offset: int
    extensions: Mapping[str, str] = field(default_factory=dict)
    """Every ce_* header, decoded, by name without the prefix (specversion, source, …)."""

    @property
    def fast(self) -> bool:
        return self.priority == "P1"

    @classmethod
    def from_record(
        cls,
        *,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
    ) -> Handoff:
        """Decode a Kafka record; InvalidJsonError or SchemaViolationError say what is wrong."""
        ce = {k[3:]: v.decode("utf-8", "replace") for k, v in headers if k.startswith("ce_")}
        raw = value or b""
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidJsonError(f"handoff value is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise SchemaViolationError("handoff value is not a JSON object")
        if not ce.get("id"):
            raise SchemaViolationError("handoff header ce_id is missing")
        route = data.get("route")
        if not isinstance(route, dict):
            route = {}
        lead_id = (key or b"").decode("utf-8", "replace") or str(data.get("lead_id", ""))
        return cls(
            ce_id=ce["id"],
            ce_type=ce.get("type", ""),
            lead_id=lead_id,
            priority=ce.get("priority") or str(route.get("priority") or "P3"),
            to_stage=ce.get("tostage") or str(data.get("to_stage") or ""),
            from_stage=ce.get("fromstage") or str(data.get("from_stage") or ""),
            queue=ce.get("route") or route.get("queue"),
            time=ce.get("time") or str(data.get("at") or ""),
            received_at=ce.get("receivedat"),
            value=raw,
            data=data,
            key=key,
            headers=list(headers),
            topic=topic,
            partition=partition,
            offset=offset,
            extensions=ce,
        )

    def link(self, template: str) -> str:
        return template.format(lead_id=self.lead_id) if template else ""


@dataclass(frozen=True)
class View:
    """What people read about a handoff (Slack, email, CRM task): no more than the handoff
    carries, which is the lead id, not a name or an email."""

    title: str
    facts: list[tuple[str, str]]
    reasons: list[str]
    bant: str
    link: str


BANT_KEYS = ("budget", "authority", "need", "timeline")


def view(handoff: Handoff, link_template: str = "") -> View:
    """Readable summary: who, stage, score, grade, top reasons, BANT, route, link."""
    data = handoff.data
    fit = _mapping(data.get("fit"))
    engagement = _mapping(data.get("engagement"))
    route = _mapping(data.get("route"))
    bant = _mapping(data.get("bant"))
    if handoff.ce_type.endswith("sla_breached.v1"):
        title = f"SLA breached ({handoff.priority}): lead {handoff.lead_id}"
    else:
        title = f"{handoff.priority} handoff: lead {handoff.lead_id} → {handoff.to_stage}"
    facts = [
        ("Lead", handoff.lead_id),
        ("Stage", f"{handoff.from_stage or '?'} → {handoff.to_stage} ({data.get('reason', '?')})"),
        ("Fit", f"{_num(fit.get('score'))} (grade {fit.get('grade', '?')})"),
        (
            "Engagement",
            f"{_num(engagement.get('score'))} (threshold {_num(data.get('threshold'))})",
        ),
        (
            "Route",
            f"{route.get('queue') or handoff.queue or '-'}, {handoff.priority}, "
            f"SLA {route.get('sla') or '-'}"
            + (f", task {route['task']}" if route.get("task") else ""),
        ),
        ("Model", str(data.get("model_version", "?"))),
    ]
    reasons = []
    for item in data.get("top_contributors") or ():
        if isinstance(item, Mapping):
            reasons.append(f"{item.get('type', '?')} ({_num(item.get('value'))})")
    marks = {True: "yes", False: "no", None: "?"}
    bant_text = ", ".join(f"{k.capitalize()}: {marks.get(bant.get(k), '?')}" for k in BANT_KEYS)
    return View(title, facts, reasons[:5], bant_text, handoff.link(link_template))


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    return "?" if value is None else str(value)


class Sink(Protocol):
    """A destination; `deliver` raises DeliveryError (or an exception retry.py can classify)."""

    name: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def deliver(self, handoff: Handoff) -> None: ...


class LogSink:
    """Logs that a handoff happened, without personal data (no lead id, no content)."""

    name = "log"

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def deliver(self, handoff: Handoff) -> None:
        log.info(
            "handoff %s %s -> %s priority=%s queue=%s",
            handoff.ce_type,
            handoff.from_stage,
            handoff.to_stage,
            handoff.priority,
            handoff.queue,
        )


class HttpSink:
    """Base of the HTTP sinks: an SSRF-safe session, a POST, status classification."""

    name = "http"

    def __init__(self, url: str, *, timeout: float, allow_private: bool) -> None:
        self.url = url
        self._timeout = timeout
        self._allow_private = allow_private
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            self._session = safe_session(allow_private=self._allow_private, timeout=self._timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, body: bytes, headers: Mapping[str, str]) -> None:
        """POST `body`; raise DeliveryError unless the answer is 2xx."""
        if self._session is None:
            await self.start()
        assert self._session is not None
        try:
            # IP-literal hosts bypass the resolver in aiohttp: check them here, every time.
            url = check_url(self.url, allow_private=self._allow_private)
            async with self._session.post(
                url,
                data=body,
                headers={"user-agent": USER_AGENT, **headers},
                allow_redirects=False,
            ) as response:
                text = "" if response.status < 300 else await _short_text(response)
                error = status_error(response.status, response.headers.get("retry-after"), text)
        except DeliveryError:
            raise
        except Exception as exc:
            raise exception_error(exc) from exc
        if error is not None:
            raise error


async def _short_text(response: aiohttp.ClientResponse) -> str:
    try:
        return (await response.content.read(300)).decode("utf-8", "replace")
    except (aiohttp.ClientError, TimeoutError):
        return ""
