"""CloudEvents in Kafka binary mode: the `ce_*` headers of every event the worker publishes.

Handoffs and account events are built here, in one place, so that both carry the same
required attributes in the same form and a subscriber can filter on headers without parsing
a body. Ids are UUIDv5 of a stable name: every replay or retry of the same fact carries the
same id, which is what lets receivers drop duplicates.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from stream.deadletters.record import Headers

SPEC_VERSION = "1.0"
SOURCE = "leadstream/worker"
CONTENT_TYPE = "application/json"
NAMESPACE = uuid.UUID("6f1b7a52-3c1e-4b7e-9a43-5d1f0c2a8e11")


def event_id(name: str) -> str:
    """The event id of a fact named `name` (e.g. `<lead_id>:<seq>`): the same on every replay."""
    return str(uuid.uuid5(NAMESPACE, name))


def binary_headers(
    *,
    ce_id: str,
    ce_type: str,
    subject: str,
    time: str,
    extensions: Mapping[str, str] | None = None,
) -> Headers:
    """Required attributes, then extensions; an empty extension is left out, not sent empty.

    CloudEvents attribute names are lower-case alphanumerics, which is why extensions such as
    `tostage` carry no separator.
    """
    headers = [
        ("ce_specversion", SPEC_VERSION),
        ("ce_id", ce_id),
        ("ce_source", SOURCE),
        ("ce_type", ce_type),
        ("ce_subject", subject),
        ("ce_time", time),
        ("content-type", CONTENT_TYPE),
    ]
    for name, value in (extensions or {}).items():
        if value:
            headers.append((f"ce_{name}", value))
    return [(key, value.encode()) for key, value in headers]
