"""Dead-letter records: the original bytes unchanged, the reason and context in headers."""

from __future__ import annotations

from collections.abc import Sequence

Headers = list[tuple[str, bytes]]


def deadletter_headers(
    reason: str,
    stage: str,
    error: str,
    *,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    extra: Sequence[tuple[str, str]] = (),
) -> Headers:
    """Headers of a dead letter; the value stays the raw input so a re-drive sends it unchanged."""
    headers: Headers = [
        ("reason", reason.encode()),
        ("stage", stage.encode()),
        ("error", error[:2000].encode("utf-8", "replace")),
    ]
    if topic is not None:
        headers.append(("original_topic", topic.encode()))
    if partition is not None:
        headers.append(("original_partition", str(partition).encode()))
    if offset is not None:
        headers.append(("original_offset", str(offset).encode()))
    headers.extend((k, v.encode("utf-8", "replace")) for k, v in extra)
    return headers


def header_value(headers: Sequence[tuple[str, bytes]] | None, name: str) -> str | None:
    """The first header called `name`, decoded, or None."""
    for key, value in headers or ():
        if key == name:
            return value.decode("utf-8", "replace")
    return None
