"""stream/jsonschemas.py: the packaged schemas resolve each other offline, by `$id`."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema_rs
import pytest

from stream import jsonschemas
from stream.scoring.model import schema_text

REPO = Path(__file__).resolve().parent.parent
EVENT = {"event_id": "e1", "type": "web.page_view", "occurred_at": "2026-01-05T10:00:00Z"}


def test_every_repository_schema_is_packaged() -> None:
    assert jsonschemas.names() == sorted(p.name for p in (REPO / "schemas").glob("*.schema.json"))
    for name in jsonschemas.names():
        assert jsonschemas.load(name) == json.loads((REPO / "schemas" / name).read_text())
        assert jsonschemas.load(name)["$id"] == jsonschemas.BASE_URI + name
    assert jsonschemas.load("model.schema.json") == json.loads(schema_text())


def test_refs_resolve_from_the_registry_without_the_network() -> None:
    """replay-input `$ref`s canonical-event by its `$id`; a plain validator would fetch it."""
    with pytest.raises(jsonschema_rs.ValidationError, match="not present in a registry"):
        jsonschema_rs.validator_for(jsonschemas.load("replay-input.schema.json"), offline=True)
    validator = jsonschemas.validator("replay-input.schema.json")
    validator.validate({**EVENT, "lead_id": "L1"})
    assert not validator.is_valid(EVENT)  # no key to fold by
    assert not validator.is_valid({**EVENT, "lead_id": "L1", "occurred_at": "2026-01-05"})


def test_a_foreign_ref_is_refused_not_fetched() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": "https://example.com/elsewhere.schema.json",
    }
    # the registry's own retriever refuses, for callers that do not pass offline=True
    with pytest.raises(jsonschema_rs.ValidationError, match="is not a packaged schema"):
        jsonschema_rs.validator_for(schema, registry=jsonschemas.registry())


def test_unknown_schema_names_the_choices() -> None:
    with pytest.raises(
        jsonschemas.SchemaNotFoundError, match=r"want one of .*canonical-event\.schema\.json"
    ):
        jsonschemas.load("lead.schema.json")
