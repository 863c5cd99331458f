"""Route selection from a small config, and its error messages."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from stream.errors import SettingsError
from stream.notify.routes import SLA_BREACHED_TYPE, Routes
from stream.notify.sinks import Handoff
from stream.worker.handoff import SLA_BREACHED_CE_TYPE

from .conftest import make_handoff

CONFIG = {
    "default": ["webhook"],
    "routes": [
        {"name": "hand-raisers", "when": {"priority": "P1"}, "sinks": ["slack", "crm", "webhook"]},
        {"name": "ae", "when": {"queue": ["ae"], "to_stage": "sales_ready"}, "sinks": ["email"]},
        {"when": {"type": "leadstream.lead.sla_breached.v1"}, "sinks": ["slack"]},
    ],
}


@pytest.mark.parametrize(
    ("priority", "kind", "expected"),
    [
        ("P1", "stage_changed", ("slack", "crm", "webhook", "email")),
        ("P2", "stage_changed", ("email",)),
        ("P3", "sla_breached", ("email", "slack")),
    ],
)
def test_selection(priority: str, kind: str, expected: tuple[str, ...]) -> None:
    routes = Routes.parse(CONFIG)
    handoff = make_handoff(priority=priority)
    if kind == "sla_breached":
        handoff = type(handoff)(
            **{**handoff.__dict__, "ce_type": "leadstream.lead.sla_breached.v1"}
        )
    assert routes.select(handoff) == expected


def test_no_match_uses_default() -> None:
    routes = Routes.parse(
        {"default": ["log"], "routes": [{"when": {"queue": "sdr"}, "sinks": ["crm"]}]}
    )
    assert routes.select(make_handoff()) == ("log",)
    assert routes.sink_names == {"log", "crm"}


def test_default_without_file() -> None:
    assert Routes.load("", webhook_url="https://x.example/h").select(make_handoff()) == ("webhook",)
    assert Routes.load("", sinks=["log"]).select(make_handoff()) == ("log",)
    both = Routes.load("", webhook_url="https://x.example/h", sinks=["webhook", "slack"])
    assert both.select(make_handoff()) == ("webhook", "slack")


def test_no_sink_without_file_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"no sink.*--sinks log"):
        Routes.load("", webhook_url="")
    with pytest.raises(SettingsError, match="LEADSTREAM_NOTIFIER_SINKS: unknown sinks"):
        Routes.load("", sinks=["pager"])


def test_load_yaml(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text("routes:\n  - when: {priority: [P1, P2]}\n    sinks: [slack]\n")
    routes = Routes.load(str(path), webhook_url="https://x.example/h")
    assert routes.select(make_handoff(priority="P2")) == ("slack",)
    assert routes.select(make_handoff(priority="P3")) == ("webhook",)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"routes": [{"when": {}, "sinks": ["pager"]}]}, "unknown sinks"),
        ({"routes": [{"when": {"colour": "red"}, "sinks": ["log"]}]}, "unknown condition"),
        ({"routes": [{"when": {}}]}, "want a mapping"),
        ({"rules": []}, "unknown keys"),
        ({"default": ["sms"]}, "allowed: webhook"),
    ],
)
def test_config_errors_name_the_fix(raw: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(SettingsError, match=message):
        Routes.parse(raw)


def breach_of(handoff: Handoff) -> Handoff:
    """The same handoff as an SLA escalation (as the worker publishes it)."""
    return replace(handoff, ce_type=SLA_BREACHED_TYPE, queue="sales_manager")


def test_escalation_sinks_get_every_breach() -> None:
    routes = Routes.parse(
        {
            "default": ["webhook"],
            "escalation": ["slack", "crm"],
            "routes": [{"when": {"priority": "P2"}, "sinks": ["email"]}],
        }
    )
    assert routes.select(breach_of(make_handoff(priority="P1"))) == ("slack", "crm")
    # matching routes still add theirs; the default is only for handoffs nothing matched
    assert routes.select(breach_of(make_handoff(priority="P2"))) == ("slack", "crm", "email")
    assert routes.select(make_handoff(priority="P1")) == ("webhook",)  # stage changes unchanged
    assert routes.sink_names == {"webhook", "slack", "crm", "email"}


def test_without_escalation_breaches_go_like_any_handoff(tmp_path: Path) -> None:
    breach = breach_of(make_handoff())
    assert Routes.load("", webhook_url="https://x.example/h").select(breach) == ("webhook",)
    assert Routes.load("", sinks=["log"]).select(breach) == ("log",)
    assert Routes.parse({"escalation": None}, webhook_url="https://x").select(breach) == (
        "webhook",
    )
    path = tmp_path / "routes.yaml"
    path.write_text("escalation: [email]\n")
    assert Routes.load(str(path), webhook_url="https://x.example/h").select(breach) == ("email",)


def test_escalation_type_is_the_workers() -> None:
    assert SLA_BREACHED_TYPE == SLA_BREACHED_CE_TYPE


def test_escalation_sinks_are_checked() -> None:
    with pytest.raises(SettingsError, match="escalation: unknown sinks"):
        Routes.parse({"escalation": ["pager"]})
