"""The record formats' JSON Schemas, shipped in the package, resolved offline by their `$id`.

The schemas refer to each other by `$id` URLs under https://leadstream.dev/schemas/; that site is
a name, not a server, so a validator must never go there. `registry()` holds every packaged
schema, and `validator()` refuses any other remote `$ref` instead of downloading it.
`stream/schemas` is the repository's `schemas/` folder (a symlink), so the files exist once.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from importlib import resources
from typing import Any

import jsonschema_rs

from stream.errors import LeadstreamError

BASE_URI = "https://leadstream.dev/schemas/"
"""Every packaged schema's `$id` is this plus its file name."""


class SchemaNotFoundError(LeadstreamError):
    """A schema name or `$id` that the package does not ship."""

    reason = "schema_not_found"


def names() -> list[str]:
    """File names of the packaged schemas (`canonical-event.schema.json`, ...), sorted."""
    folder = resources.files("stream") / "schemas"
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".schema.json"))


@functools.cache
def load(name: str) -> dict[str, Any]:
    """One packaged schema by file name or `$id`."""
    name = name.removeprefix(BASE_URI)
    if name not in names():
        raise SchemaNotFoundError(f"no packaged schema {name!r}: want one of {', '.join(names())}")
    text = (resources.files("stream") / "schemas" / name).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def resources_by_id() -> Iterator[tuple[str, dict[str, Any]]]:
    """(`$id`, schema) of every packaged schema, for any validator's registry.

    With python-jsonschema: `referencing.Registry().with_resources(
    (uri, referencing.jsonschema.DRAFT202012.create_resource(s)) for uri, s in ...)`.
    """
    for name in names():
        schema = load(name)
        yield schema["$id"], schema


def _refuse(uri: str) -> Any:
    raise SchemaNotFoundError(f"$ref {uri!r} is not a packaged schema and is not fetched")


@functools.cache
def registry() -> jsonschema_rs.Registry:
    """Every packaged schema under its `$id`; anything else is refused, not downloaded."""
    return jsonschema_rs.Registry(list(resources_by_id()), retriever=_refuse)


@functools.cache
def validator(name: str) -> jsonschema_rs.Validator:
    """A validator for a packaged schema whose `$ref`s resolve in `registry()`, offline."""
    return jsonschema_rs.validator_for(load(name), registry=registry(), offline=True)
