"""Model loading: the packaged default, schema copies, errors that name the key and line."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema_rs
import pytest
import yaml

from stream.scoring import ModelError, default_model, load_model
from stream.scoring.model import MODELS_DIR

REPO = Path(__file__).resolve().parents[2]
DEFAULT = (MODELS_DIR / "default-b2b.yaml").read_text()


def test_default_model_identity() -> None:
    model = default_model()
    assert (model.id, model.version, model.ref) == ("default-b2b", "1.0.0", "default-b2b@1.0.0")
    assert default_model() is model
    assert load_model().ref == model.ref
    assert load_model(MODELS_DIR / "default-b2b.yaml").raw == model.raw


def test_packaged_schema_is_the_repo_schema() -> None:
    packaged = (MODELS_DIR / "model.schema.json").read_bytes()
    assert packaged == (REPO / "schemas" / "model.schema.json").read_bytes()


@pytest.mark.parametrize(
    "name",
    [
        "model.schema.json",
        "canonical-event.schema.json",
        "replay-output.schema.json",
        "replay-input.schema.json",
    ],
)
def test_schemas_are_valid_2020_12(name: str) -> None:
    schema = json.loads((REPO / "schemas" / name).read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema_rs.meta.validate(schema)


def test_default_model_numbers(model) -> None:  # type: ignore[no-untyped-def]
    # every number of the model text lives in the file
    assert model.groups == {"awareness": 25, "consideration": 45, "decision": 60, "negative": None}
    assert model.types["web.pricing_view"].points == 8
    assert model.journey.early_multiplier == 0.25
    assert model.rules.mql_thresholds == {"A": 35, "B": 45}
    assert model.canonical("chat.sales_request") == "sales.demo_requested"
    assert model.rules.fast_lane_types == {"sales.demo_requested"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "  web.page_view:               {group: awareness,",
            "  web.page_view:               {group: awarenes,",
            r"event_types\.web\.page_view\.group",
        ),
        (
            "half_life: 7, freq_cap: {count: 5",
            "half_life: -7, freq_cap: {count: 5",
            r"event_types\.web\.page_view\.half_life",
        ),
        ("timezone: UTC", "timezone: Mars/Olympus", r"timezone, line 6: unknown time zone"),
        (
            "  meeting.requested: sales.demo_requested",
            "  meeting.requested: sales.demo",
            r"aliases\.meeting\.requested, line \d+: alias of unknown type",
        ),
        ("version: 1.0.0", "version: one", r"version, line 5"),
        (
            "    thresholds: {A: 35, B: 45}",
            "    thresholds: {A: 35, E: 45}",
            r"stages\.mql\.thresholds\.E",
        ),
        ("  top_contributors: 5", "  top_contributors: 5\n  extra: 1", r"explain"),
        (
            "  seen_event_days: 37 ",
            "  seen_event_ids: 128 ",
            r"retention\.seen_event_ids, line \d+: replaced by seen_event_days",
        ),
        ("  seen_event_max: 20000 ", "  seen_event_max: 10 ", r"retention\.seen_event_max"),
    ],
)
def test_errors_name_key_path_and_line(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in DEFAULT
    with pytest.raises(ModelError, match=message):
        load_model(write(tmp_path, DEFAULT.replace(old, new, 1)))


def test_line_of_a_nested_error(tmp_path: Path) -> None:
    text = DEFAULT.replace("disqualify_at_or_below: -50", "disqualify_at_or_below: low")
    line = 1 + text.splitlines().index("  disqualify_at_or_below: low")
    with pytest.raises(ModelError, match=rf"fit\.disqualify_at_or_below, line {line}:"):
        load_model(write(tmp_path, text))


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not valid YAML"):
        load_model(write(tmp_path, "id: [unclosed"))
    with pytest.raises(ModelError, match="cannot read"):
        load_model(tmp_path / "nope.yaml")


def test_json_model_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps(yaml.safe_load(DEFAULT)))
    assert load_model(path).ref == "default-b2b@1.0.0"
