"""Route selection from a small config, and its error messages."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from stream.errors import SettingsError
from stream.notify.routes import SLA_BREACHED_TYPE, Routes, is_sales
from stream.notify.sinks import Handoff
from stream.pipeline.handoff import SLA_BREACHED_CE_TYPE

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


NO_ROUTE = {"queue": None, "priority": None, "sla": None, "task": None}


def transition(
    from_stage: str, to_stage: str, route: dict[str, Any] | None = None, **headers: str
) -> Handoff:
    """A handoff as the worker writes it: no `ce_route`/`ce_priority` without a route."""
    route = route or NO_ROUTE
    handoff = make_handoff(from_stage=from_stage, to_stage=to_stage)
    return replace(
        handoff,
        from_stage=from_stage,
        to_stage=to_stage,
        queue=route["queue"],
        priority=route["priority"] or "P3",
        data={**handoff.data, "route": route},
        **headers,
    )


@pytest.mark.parametrize(
    ("handoff", "sales"),
    [
        (transition("anonymous", "lead"), False),  # an identify: half of all handoffs
        (transition("lead", "disqualified"), False),  # fit disqualified it before sales saw it
        (transition("lead", "nurture"), False),
        (transition("lead", "mql", {"queue": "sdr", "priority": "P2", "sla": "P1D", "task": "q"}),
         True),
        (transition("lead", "mql"), True),  # into a sales stage (BANT met: sales_ready follows)
        (transition("mql", "nurture"), True),  # decayed: it leaves the SDR's queue
        (transition("sales_ready", "disqualified"), True),
        (transition("sql", "opportunity"), True),
        (transition("disqualified", "disqualified",
                    {"queue": "auto_reply", "priority": "P3", "sla": None, "task": None}), True),
        (transition("lead", "lead", {"queue": None, "priority": "P2", "sla": "PT4H", "task": None}),
         True),  # an SLA without a queue
        (transition("lead", "lead", ce_type=SLA_BREACHED_TYPE), True),
    ],
)  # fmt: skip
def test_sales_transitions(handoff: Handoff, sales: bool) -> None:
    assert is_sales(handoff) is sales
