"""Segment/RudderStack spec messages (track, identify, page, …) → canonical events."""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from stream.collector.directory import own_key
from stream.collector.eventtime import format_time, occurred_at
from stream.collector.mapping import UNMAPPED, EventMapping
from stream.errors import (
    ForbiddenTypeError,
    InvalidJsonError,
    LeadstreamError,
    SchemaViolationError,
    SizeViolationError,
)
from stream.scoring.events import STAGES

CALL_TYPES = ("track", "identify", "page", "screen", "group", "alias")
# Nesting deeper than this is refused before anything walks it recursively (orjson itself stops
# at 1024 on load but at 254 on dump, so a deep but loadable body could not be re-serialised).
MAX_DEPTH = 100
MAX_ID_CHARS = 512
_CONTEXT_PAGE = ("url", "path", "referrer", "title")
_CONTEXT_CAMPAIGN = ("name", "source", "medium", "term", "content")


class BatchTooLargeError(SizeViolationError):
    """More events in one batch than allowed (answered 400, not 413: the bytes were fine)."""


@dataclass(frozen=True)
class Source:
    """Who sent a request: source name, kind (browser, server, webhook) and dedupe namespace."""

    name: str
    kind: str
    namespace: str


@dataclass(frozen=True)
class Accepted:
    """A canonical event ready to produce, with its Kafka key and the client's message id."""

    event: dict[str, Any]
    key: bytes
    message_id: str | None


@dataclass(frozen=True)
class Rejected:
    """An input that goes to the dead-letter topic, with the reason carried by `error`."""

    raw: bytes
    key: bytes | None
    error: LeadstreamError


@dataclass(frozen=True)
class Dropped:
    """An input left out on purpose and counted (e.g. an email open by a privacy proxy)."""

    reason: str


Outcome = Accepted | Rejected | Dropped


@dataclass
class Batch:
    """The messages of one request and the batch-level fields Segment lets them inherit."""

    messages: list[Any]
    context: Mapping[str, Any] = field(default_factory=dict)
    sent_at: Any = None


def parse_json(raw: bytes) -> Any:
    """Decode a JSON body; any failure (syntax, truncation, UTF-8, depth) is InvalidJsonError."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidJsonError(f"body is not valid JSON: {exc}") from None
    check_depth(value)
    return value


def check_depth(value: Any, limit: int = MAX_DEPTH) -> None:
    """Refuse nesting deeper than `limit`, without recursion."""
    if not isinstance(value, dict | list):
        return
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            raise InvalidJsonError(f"body nests deeper than {limit} levels")
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))


def has_control(text: str) -> bool:
    """True when `text` holds a control character (C0, DEL, C1), a line/paragraph separator,
    or an invisible format character (Unicode category Cf: zero-width spaces and joiners,
    the bidirectional marks, embeddings, overrides and isolates such as U+202E, U+FEFF).

    Control characters end up in Kafka keys, Redis keys and HTTP headers of handoffs, where
    they are forbidden ("Forbidden control character in headers") and would fail at the
    notifier for good. Format characters pass there but reach sales: `u1` + U+200B looks like
    `u1` and is another lead, and U+202E shows `moc.evil@x` reversed as a trusted address.
    Both are refused at the door instead.
    """
    return any(unicodedata.category(c) in ("Cc", "Cf") or c in "\u2028\u2029" for c in text)


def check_text(name: str, text: str) -> str:
    """`text`, or SchemaViolationError naming the field when it holds a control or an
    invisible format character (`has_control`)."""
    if has_control(text):
        raise SchemaViolationError(
            f"{name}: control characters and invisible or direction-changing characters "
            "(Unicode Cc, Cf) are not allowed"
        )
    return text


def _check_keys(name: str, data: Mapping[str, Any]) -> None:
    for key in data:
        if isinstance(key, str) and has_control(key):
            raise SchemaViolationError(
                f"{name}: a key holds control characters or invisible format characters"
            )


def split_body(call: str, body: Any, max_events: int) -> Batch:
    """The messages of a request body: a batch's list, or the body itself for single calls."""
    if not isinstance(body, dict):
        raise SchemaViolationError(f"body: want a JSON object, got {type(body).__name__}")
    if call != "batch":
        return Batch([body])
    messages = body.get("batch")
    if not isinstance(messages, list):
        raise SchemaViolationError("batch: want a list of messages")
    if len(messages) > max_events:
        raise BatchTooLargeError(f"batch of {len(messages)} events exceeds {max_events} events")
    context = body.get("context")
    return Batch(messages, context if isinstance(context, dict) else {}, body.get("sentAt"))


def body_write_key(body: Any) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("writeKey"), str):
        return str(body["writeKey"])
    return None


def process(
    batch: Batch,
    call: str,
    source: Source,
    mapping: EventMapping,
    received_at: datetime,
    max_event_bytes: int,
    raw_single: bytes | None = None,
) -> list[Outcome]:
    """Every message of a request as an accepted event or a dead letter; never raises."""
    outcomes: list[Outcome] = []
    for message in batch.messages:
        raw = raw_single if raw_single is not None else orjson.dumps(message)
        try:
            if len(raw) > max_event_bytes:
                raise SizeViolationError(
                    f"event of {len(raw)} bytes exceeds {max_event_bytes} bytes"
                )
            event = canonical(
                message,
                None if call == "batch" else call,
                source,
                mapping,
                received_at,
                batch,
            )
        except LeadstreamError as exc:
            outcomes.append(Rejected(raw, guess_key(message), exc))
            continue
        key = identity_key(event)
        message_id = message.get("messageId") if isinstance(message, dict) else None
        outcomes.append(Accepted(event, key, event["event_id"] if message_id else None))
    return outcomes


def canonical(
    message: Any,
    call: str | None,
    source: Source,
    mapping: EventMapping,
    received_at: datetime,
    batch: Batch | None = None,
) -> dict[str, Any]:
    """One Segment message as a canonical event; SchemaViolationError & co. when it cannot be."""
    if not isinstance(message, dict):
        raise SchemaViolationError(f"event: want a JSON object, got {type(message).__name__}")
    call = call or message.get("type")
    if call not in CALL_TYPES:
        raise SchemaViolationError(f"type: {call!r} is not one of {', '.join(CALL_TYPES)}")
    batch = batch or Batch([])
    context = {**batch.context, **_object(message, "context")}
    properties = dict(_object(message, "properties"))
    context_traits = _object(context, "traits")
    traits_raw = dict(context_traits)
    if call in ("identify", "group"):
        traits_raw.update(_object(message, "traits"))

    _check_keys("traits", traits_raw)
    _check_keys("properties", properties)
    for raw_email in (traits_raw.get("email"), properties.get("email")):
        if isinstance(raw_email, str):
            check_text("email", raw_email)
    anonymous_id = _ident(message, "anonymousId")
    user_id = _ident(message, "userId")
    email = normalise_email(traits_raw.get("email")) or normalise_email(properties.get("email"))
    event_id = _ident(message, "messageId") or str(uuid.uuid4())
    account_id = None
    page = _object(context, "page")

    if call == "track":
        name = message.get("event")
        if not isinstance(name, str) or not name.strip():
            raise SchemaViolationError("event: a track call needs an event name")
        check_text("event", name)
        mapped = mapping.track_type(name)
        if mapped is None:
            event_type = UNMAPPED
            properties["event_name"] = name[:256]
        else:
            event_type = mapped
            if event_type in mapping.server_only and source.kind != "server":
                raise ForbiddenTypeError(
                    f"event {name!r} ({event_type}) is accepted only from a server write key"
                )
            if event_type == "manual.override" and properties.get("stage") not in STAGES:
                raise SchemaViolationError(
                    f"properties.stage={properties.get('stage')!r}: manual.override wants one "
                    f"of {', '.join(STAGES)}"
                )
    elif call in ("page", "screen"):
        url = _str(properties.get("url")) or _str(page.get("url"))
        path = _str(properties.get("path")) or _str(page.get("path"))
        name = _str(message.get("name"))
        if call == "screen" and not (path or url) and name:
            path = "/" + "-".join(name.lower().split())
        event_type = mapping.page_type(path or url)
        for key in ("url", "path", "referrer", "title"):
            value = _str(page.get(key))
            if key not in properties and value is not None:
                properties[key] = value
        if name is not None and "name" not in properties:
            properties["name"] = name
        if path and "path" not in properties:
            properties["path"] = path
    elif call == "identify":
        event_type = "identify"
    elif call == "group":
        event_type = "group"
        account_id = _ident(message, "groupId")
        if account_id is None:
            raise SchemaViolationError("groupId: a group call needs a groupId")
    else:
        event_type = "alias"
        previous = _ident(message, "previousId")
        if previous is None:
            raise SchemaViolationError("previousId: an alias call needs a previousId")
        properties["previous_id"] = previous

    if account_id is None:
        account_id = (
            _ident(context, "groupId")
            or _ident(traits_raw, "company_id")
            or _ident(_object(traits_raw, "company"), "id")
        )
    _check_properties(properties)
    if not (anonymous_id or user_id or email):
        raise SchemaViolationError(
            "no anonymousId, userId or email: the event cannot be tied to a lead"
        )
    occurred = occurred_at(message, received_at, batch.sent_at)
    return make_event(
        event_id=event_id,
        event_type=event_type,
        channel=mapping.channel(event_type),
        occurred_at=occurred,
        received_at=received_at,
        anonymous_id=anonymous_id,
        user_id=user_id,
        email=email,
        account_id=account_id,
        source=source.name,
        properties=properties,
        traits=mapping.traits(traits_raw, email),
        context=small_context(context),
    )


def make_event(
    *,
    event_id: str,
    event_type: str,
    channel: str,
    occurred_at: datetime,
    received_at: datetime,
    anonymous_id: str | None,
    user_id: str | None,
    email: str | None,
    account_id: str | None,
    source: str,
    properties: dict[str, Any],
    traits: dict[str, Any],
    context: dict[str, Any],
) -> dict[str, Any]:
    """The canonical event record: every field present, missing values null or {}."""
    return {
        "event_id": event_id,
        "type": event_type,
        "channel": channel,
        "occurred_at": format_time(occurred_at),
        "received_at": format_time(received_at),
        "anonymous_id": anonymous_id,
        "user_id": user_id,
        "email": email,
        "account_id": account_id,
        "source": source,
        "properties": properties,
        "traits": traits,
        "context": context,
    }


def identity_key(event: Mapping[str, Any]) -> bytes:
    """The Kafka key by the event's own ids: user id, else anonymous id, else email
    (canonical() guarantees one). The collector keys by the identity directory
    (`stream/collector/directory.py`), which starts from this."""
    return own_key(event).encode()


def guess_key(message: Any) -> bytes | None:
    """Best-effort identity key of a message that failed, for its dead letter."""
    if not isinstance(message, dict):
        return None
    for name in ("anonymousId", "userId"):
        value = message.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)[:MAX_ID_CHARS].encode()
    return None


def small_context(context: Mapping[str, Any]) -> dict[str, Any]:
    """The context worth keeping: page, user agent, library, campaign. The IP is dropped."""
    out: dict[str, Any] = {}
    page = {k: v for k in _CONTEXT_PAGE if (v := _str(_object(context, "page").get(k)))}
    if page:
        out["page"] = page
    user_agent = _str(context.get("userAgent"))
    if user_agent:
        out["userAgent"] = user_agent[:512]
    library = _object(context, "library")
    lib = {k: v[:128] for k in ("name", "version") if (v := _str(library.get(k)))}
    if lib:
        out["library"] = lib
    campaign = _object(context, "campaign")
    camp = {k: v[:256] for k in _CONTEXT_CAMPAIGN if (v := _str(campaign.get(k)))}
    if camp:
        out["campaign"] = camp
    return out


def normalise_email(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    email = value.strip().lower()
    if has_control(email):
        return None
    local, at, domain = email.rpartition("@")
    if not at or not local or "." not in domain or len(email) > 254 or " " in email:
        return None
    return email


def _check_properties(properties: Mapping[str, Any]) -> None:
    """The properties the scoring model reads must have the canonical schema's types."""
    for name in ("message_id", "asset_id", "webinar_id"):
        value = properties.get(name)
        if name in properties and (isinstance(value, bool) or not isinstance(value, str | int)):
            raise SchemaViolationError(f"properties.{name}: want a string or integer")
    if not isinstance(properties.get("reason"), str | None):
        raise SchemaViolationError("properties.reason: want a string")
    if "machine_open" in properties and not isinstance(properties["machine_open"], bool):
        raise SchemaViolationError("properties.machine_open: want true or false")


def _object(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SchemaViolationError(f"{name}: want an object, got {type(value).__name__}")
    return value


def _ident(data: Mapping[str, Any], name: str) -> str | None:
    """An id field: strings (stripped) and integers; blank means absent; others are refused."""
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise SchemaViolationError(f"{name}: want a string, got {type(value).__name__}")
    text = value.strip() if isinstance(value, str) else str(value)
    if len(text) > MAX_ID_CHARS:
        raise SchemaViolationError(f"{name}: longer than {MAX_ID_CHARS} characters")
    return check_text(name, text) or None


def _str(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()[:2048]
    return None
