"""Routes: which handoffs go to which sinks, from a small YAML or JSON file.

    default: [webhook]            # when no route matches (optional)
    escalation: [slack, crm]      # SLA breaches (leadstream.lead.sla_breached.v1) (optional)
    routes:
      - name: hand-raisers        # for logs and errors only
        when: {priority: P1}      # every key must match; a list means any of
        sinks: [webhook, slack, crm]
      - when: {to_stage: [sales_ready, sql], queue: ae}
        sinks: [email]

Keys of `when`: type (ce_type), priority, to_stage, from_stage, queue. Every matching route
adds its sinks (each sink once per handoff); no match → `default`. `escalation` is a route of
its own that matches every SLA breach. Without a file: every handoff, SLA breaches included, to
the sinks LEADSTREAM_NOTIFIER_SINKS names, else to `webhook` when a webhook URL is set; with
neither the notifier refuses to start, since it would consume handoffs and deliver none.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from stream.errors import SettingsError
from stream.notify.sinks import Handoff

SINK_NAMES = ("webhook", "slack", "email", "crm", "log")
MATCH_KEYS = ("type", "priority", "to_stage", "from_stage", "queue")
CONFIG_KEYS = ("routes", "default", "escalation")
# The worker's stream.pipeline.handoff.SLA_BREACHED_CE_TYPE (a test keeps the two equal; the
# notifier does not import the scoring engine for one string).
SLA_BREACHED_TYPE = "leadstream.lead.sla_breached.v1"
ESCALATION_ROUTE = "escalation"
# Stages sales works in: a change into or out of one concerns sales (a lead arrives, moves on,
# or leaves their queue). The notifier does not import the scoring engine for a list.
SALES_STAGES = frozenset({"mql", "sales_ready", "sql", "opportunity", "customer"})
SALES_SINKS = frozenset({"webhook", "slack", "email", "crm"})


def is_sales(handoff: Handoff) -> bool:
    """A sales transition: it has a route (queue) or an SLA, is an SLA breach, or moves into
    or out of a sales stage. The rest (about half of all: `anonymous -> lead` identifies, a
    lead's fit disqualifying it before sales saw it) stay on the topic for other consumers and
    never page a salesperson (LEADSTREAM_NOTIFIER_HANDOFFS=all sends them too)."""
    route = handoff.data.get("route")
    sla = route.get("sla") if isinstance(route, Mapping) else None
    return bool(
        handoff.queue
        or sla
        or handoff.ce_type == SLA_BREACHED_TYPE
        or handoff.to_stage in SALES_STAGES
        or handoff.from_stage in SALES_STAGES
    )


@dataclass(frozen=True)
class Route:
    """One rule: when every condition holds, the handoff goes to `sinks`."""

    name: str
    when: Mapping[str, frozenset[str]]
    sinks: tuple[str, ...]

    def matches(self, handoff: Handoff) -> bool:
        facts = {
            "type": handoff.ce_type,
            "priority": handoff.priority,
            "to_stage": handoff.to_stage,
            "from_stage": handoff.from_stage,
            "queue": handoff.queue or "",
        }
        return all(facts[key] in allowed for key, allowed in self.when.items())


@dataclass(frozen=True)
class Routes:
    """All rules and the default; `select` is the only question asked of them."""

    routes: tuple[Route, ...]
    default: tuple[str, ...]

    def select(self, handoff: Handoff) -> tuple[str, ...]:
        chosen: dict[str, None] = {}
        for route in self.routes:
            if route.matches(handoff):
                chosen.update(dict.fromkeys(route.sinks))
        return tuple(chosen) if chosen else self.default

    @property
    def sink_names(self) -> frozenset[str]:
        return frozenset(self.default).union(*(r.sinks for r in self.routes))

    @classmethod
    def default_for(cls, webhook_url: str) -> Routes:
        return cls((), ("webhook",) if webhook_url else ("log",))

    @classmethod
    def parse(
        cls, raw: Mapping[str, Any], *, webhook_url: str = "", source: str = "routes"
    ) -> Routes:
        """Check and build; errors name the file, the route and the allowed values."""
        if not isinstance(raw, Mapping):
            raise SettingsError(f"{source}: want a mapping with `routes` and `default`")
        unknown = set(raw) - set(CONFIG_KEYS)
        if unknown:
            raise SettingsError(
                f"{source}: unknown keys {sorted(unknown)}; want {', '.join(CONFIG_KEYS)}"
            )
        default = (
            _sinks(raw["default"], f"{source}: default")
            if "default" in raw
            else cls.default_for(webhook_url).default
        )
        routes = []
        if raw.get("escalation"):
            sinks = _sinks(raw["escalation"], f"{source}: escalation")
            when = {"type": frozenset({SLA_BREACHED_TYPE})}
            routes.append(Route(ESCALATION_ROUTE, when, sinks))
        for i, item in enumerate(raw.get("routes") or ()):
            where = f"{source}: route {i}"
            if not isinstance(item, Mapping) or "sinks" not in item:
                raise SettingsError(f"{where}: want a mapping with `when` and `sinks`")
            name = str(item.get("name") or f"route-{i}")
            where = f"{source}: route {name!r}"
            extra = set(item) - {"name", "when", "sinks"}
            if extra:
                raise SettingsError(
                    f"{where}: unknown keys {sorted(extra)}; want name, when, sinks"
                )
            when = item.get("when") or {}
            if not isinstance(when, Mapping):
                raise SettingsError(f"{where}: `when` must be a mapping")
            bad = set(when) - set(MATCH_KEYS)
            if bad:
                raise SettingsError(
                    f"{where}: unknown condition {sorted(bad)}; allowed: {', '.join(MATCH_KEYS)}"
                )
            conditions = {str(k): frozenset(_strings(v)) for k, v in when.items()}
            routes.append(Route(name, conditions, _sinks(item["sinks"], where)))
        return cls(tuple(routes), default)

    @classmethod
    def without_file(cls, webhook_url: str, sinks: Sequence[str] = ()) -> Routes:
        """Every handoff to `sinks`, else to the webhook; SettingsError when there is neither.

        A notifier joins its consumer group and takes partitions whatever it delivers to: one
        without a sink would settle every handoff of those partitions by logging it, and sales
        would never hear of them. So the log alone must be asked for.
        """
        if sinks:
            return cls((), _sinks(list(sinks), "LEADSTREAM_NOTIFIER_SINKS"))
        if webhook_url:
            return cls((), ("webhook",))
        raise SettingsError(
            "the notifier has no sink: LEADSTREAM_WEBHOOK_URL is empty and there is no routes "
            "file (LEADSTREAM_ROUTES_PATH), so it would consume every handoff of its partitions "
            "and deliver none. Set LEADSTREAM_WEBHOOK_URL (or a routes file), or ask for the log "
            "only: `leadstream notifier --sinks log` (LEADSTREAM_NOTIFIER_SINKS=log)"
        )

    @classmethod
    def load(cls, path: str, *, webhook_url: str = "", sinks: Sequence[str] = ()) -> Routes:
        """Read a routes file (.json, else YAML); without one, `without_file`."""
        if not path:
            return cls.without_file(webhook_url, sinks)
        if sinks:
            raise SettingsError(
                f"LEADSTREAM_NOTIFIER_SINKS={','.join(sinks)!r} and LEADSTREAM_ROUTES_PATH="
                f"{path!r}: the routes file says where handoffs go; set one of the two"
            )
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise SettingsError(f"LEADSTREAM_ROUTES_PATH={path!r}: cannot read ({exc})") from None
        try:
            raw = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise SettingsError(f"LEADSTREAM_ROUTES_PATH={path!r}: not valid ({exc})") from None
        return cls.parse(raw or {}, webhook_url=webhook_url, source=path)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence):
        return [str(v) for v in value]
    return [str(value)]


def _sinks(value: Any, where: str) -> tuple[str, ...]:
    names = _strings(value)
    bad = [n for n in names if n not in SINK_NAMES]
    if bad:
        raise SettingsError(f"{where}: unknown sinks {bad}; allowed: {', '.join(SINK_NAMES)}")
    return tuple(dict.fromkeys(names))
