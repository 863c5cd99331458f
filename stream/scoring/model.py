"""Load and check a model file (YAML or JSON) against its schema and its cross-references."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jsonschema_rs
import yaml

from stream.errors import LeadstreamError
from stream.scoring.events import EPOCH, STAGES, US_PER_DAY
from stream.times import parse_duration

DEFAULT_MODEL_FILE = "default-b2b.yaml"
SCHEMA_FILE = "model.schema.json"
MODELS_DIR = Path(__file__).resolve().parent / "models"
SEEN_EVENT_MAX = 20_000  # default bound of remembered event ids per lead (~220 KB of state)
CALENDAR_DAY_SPAN_US = 2 * US_PER_DAY  # a local calendar day lies within 2 days of any instant


class ModelError(LeadstreamError):
    """A model file is invalid; the message names the file, the key path and the line."""

    reason = "model_invalid"


@dataclass(frozen=True, slots=True)
class FreqCap:
    """`count` scored entries per rolling window of `window_us`, or per calendar day (None)."""

    count: int
    window_us: int | None


@dataclass(frozen=True, slots=True)
class TypeRule:
    """One engagement event type of the catalogue (scoring-model.md section 3)."""

    name: str
    group: str
    points: float
    half_life: float | None
    freq: FreqCap | None
    cap: float | None
    dedupe_key: str | None
    derived: bool
    horizon_us: int  # how long scored times are kept for windows (0: not kept)


@dataclass(frozen=True, slots=True)
class Route:
    """Where a handoff goes: queue, priority, SLA (ISO 8601 duration) and optional task.

    `sla_us` is the SLA as microseconds (P1D = 24 h exactly), None without an SLA.
    """

    route: str
    priority: str
    sla: str | None
    task: str | None = None
    sla_us: int | None = None


@dataclass(frozen=True, slots=True)
class FitAttribute:
    """Points of one profile attribute: by value, by integer range, or an override of fit."""

    name: str
    points: dict[str, float]
    override: dict[str, float]
    ranges: tuple[tuple[int, int | None, float], ...]


@dataclass(frozen=True, slots=True)
class Journey:
    """Journey rule parameters (scoring-model.md section 5)."""

    early_type: str
    early_min_prior: int
    early_prior_groups: frozenset[str]
    early_window_us: int
    early_window_group: str
    early_multiplier: float
    early_tag: str
    streak_trigger: str
    streak_window_us: int
    streak_min_days: int
    streak_emit: str
    mofu_groups: frozenset[str]
    mofu_window_us: int
    mofu_exclude_tag: str


@dataclass(frozen=True, slots=True)
class StageRules:
    """Stage machine parameters (scoring-model.md sections 2, 6 and 7)."""

    grades: tuple[tuple[str, float], ...]  # highest minimum first
    default_grade: str
    fit_min: float
    fit_max: float
    disqualify_at: float
    mql_thresholds: dict[str, float]
    mql_from: frozenset[str]
    cooldown_us: int
    bant_min_true: int
    ready: Route
    qualify: Route
    fast_lane_types: frozenset[str]
    fast_lane_from: frozenset[str]
    fast_lane_routes: dict[str, Route]
    disqualified_route: Route
    escalation: Route | None  # where SLA breaches go; None: no SLA timers
    exit_below: float
    exit_ticks: int
    nurture_reasons: frozenset[str]
    disqualify_reasons: frozenset[str]
    budget_confirmed: str
    budget_amount: str
    budget_min: float
    authority_seniority: frozenset[str]
    authority_roles: frozenset[str]
    need_trait: str
    timeline_trait: str
    timeline_max: float


@dataclass(frozen=True, eq=False)
class Model:
    """A checked scoring model. Build it with `load_model`; `raw` is the parsed file."""

    id: str
    version: str
    tz_name: str
    tz: ZoneInfo | None  # None for UTC: calendar arithmetic by integer division
    eng_min: float
    eng_max: float
    groups: dict[str, float | None]
    types: dict[str, TypeRule]
    aliases: dict[str, str]
    email_invalid: frozenset[str]
    email_suppressed: frozenset[str]
    machine_open_types: frozenset[str]
    machine_open_property: str
    fit_attributes: tuple[FitAttribute, ...]
    company_attributes: frozenset[str]
    profile_traits: frozenset[str]  # traits the engine keeps: fit attributes and BANT inputs
    journey: Journey
    rules: StageRules
    top_n: int
    grace_us: int
    keys_per_type: int
    seen_us: int  # how long an applied event id is remembered, on the lead's clock
    seen_max: int  # at most this many remembered ids per lead (state size bound)
    raw: dict[str, Any]

    @functools.cached_property
    def ref(self) -> str:
        """`id@version`, written into every transition, ledger entry and snapshot."""
        return f"{self.id}@{self.version}"

    def canonical(self, event_type: str) -> str:
        """Resolve an alias to its type (unknown names pass through)."""
        return self.aliases.get(event_type, event_type)

    def local_day(self, us: int) -> int:
        """Calendar date of an instant in the model's time zone, as a day ordinal."""
        if self.tz is None:
            return us // US_PER_DAY
        return (EPOCH + timedelta(microseconds=us)).astimezone(self.tz).toordinal()

    def day_bounds(self, us: int) -> tuple[int, int]:
        """[start, end) of the calendar date of `us` in the model's time zone."""
        if self.tz is None:
            start = us // US_PER_DAY * US_PER_DAY
            return start, start + US_PER_DAY
        local = (EPOCH + timedelta(microseconds=us)).astimezone(self.tz)
        midnight = datetime.combine(local.date(), time(0), tzinfo=self.tz)
        start = (midnight - EPOCH) // timedelta(microseconds=1)
        if start > us:  # 00:00 did not exist that day (DST at midnight): the day began earlier
            start = us
        return start, self.next_midnight(us)

    def next_midnight(self, us: int) -> int:
        """First 00:00 in the model's time zone strictly after the instant `us`."""
        if self.tz is None:
            return (us // US_PER_DAY + 1) * US_PER_DAY
        local = (EPOCH + timedelta(microseconds=us)).astimezone(self.tz)
        day = local.date()
        while True:
            day = day + timedelta(days=1)
            midnight = datetime.combine(day, time(0), tzinfo=self.tz)
            result = (midnight - EPOCH) // timedelta(microseconds=1)
            if result > us:
                return result

    def section(self, *path: str) -> Any:
        """A raw configuration value by key path, e.g. section("stages", "mql")."""
        node: Any = self.raw
        for key in path:
            node = node[key]
        return node


@functools.cache
def _schema_validator() -> jsonschema_rs.Validator:
    return jsonschema_rs.validator_for(json.loads(schema_text()))


def schema_text() -> str:
    """The packaged model JSON Schema (identical to schemas/model.schema.json)."""
    return (MODELS_DIR / SCHEMA_FILE).read_text("utf-8")


def _line_of(root: yaml.Node | None, path: list[str | int]) -> int | None:
    """1-based line of the YAML node at `path` (the deepest node found)."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for key in path:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if getattr(k, "value", None) == str(key)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            nxt = node.value[key]
        else:
            nxt = None
        if nxt is None:
            break
        node = nxt
        line = node.start_mark.line + 1
    return line


class _Checker:
    """Collects cross-reference errors with their key paths."""

    def __init__(self, source: str, root: yaml.Node | None) -> None:
        self.source = source
        self.root = root

    def fail(self, path: list[str | int], message: str) -> ModelError:
        where = ".".join(str(p) for p in path) or "(root)"
        line = _line_of(self.root, path)
        at = f", line {line}" if line else ""
        return ModelError(f"{self.source}: {where}{at}: {message}")


def _days_us(days: float) -> int:
    return round(days * US_PER_DAY)


_SLA = re.compile(r"P(?:([0-9]+)D)?(?:T(?:([0-9]+)H)?(?:([0-9]+)M)?)?")
US_PER_MINUTE = 60_000_000  # SLAs are whole minutes; SLA due instants too


def sla_us(text: str) -> int | None:
    """An SLA (ISO 8601 duration of days, hours, minutes: P1D, PT4H, P1DT12H, PT90M) as
    microseconds; a day is 24 hours exactly. None when the text is not such a duration or is
    zero long."""
    if _SLA.fullmatch(text) is None:
        return None
    try:
        total = parse_duration(text) // timedelta(microseconds=1)
    except ValueError:  # "P" or "PT": the pattern's parts are all optional
        return None
    return total or None


def _build(raw: dict[str, Any], check: _Checker) -> Model:
    groups: dict[str, float | None] = dict(raw["groups"])
    journey = raw["journey"]
    early, streak = journey["early_pricing"], journey["research_streak"]
    grace = _days_us(raw["retention"]["late_grace_days"])
    types: dict[str, TypeRule] = {}
    for name, spec in raw["event_types"].items():
        if spec["group"] not in groups:
            raise check.fail(["event_types", name, "group"], f"unknown group {spec['group']!r}")
        fc = spec.get("freq_cap")
        freq = None
        horizon = 0
        if fc is not None:
            window = None if fc.get("calendar_day") else _days_us(fc["days"])
            freq = FreqCap(fc["count"], window)
            horizon = CALENDAR_DAY_SPAN_US if window is None else window
        if spec["group"] == early["window_group"] and name != early["type"]:
            horizon = max(horizon, _days_us(early["window_days"]))
        if name == streak["trigger"]:
            horizon = max(horizon, _days_us(streak["window_days"]))
        cap = spec["type_cap"]
        if cap is not None and spec["points"] != 0 and (cap > 0) != (spec["points"] > 0):
            raise check.fail(["event_types", name, "type_cap"], "cap and points differ in sign")
        types[name] = TypeRule(
            name=name,
            group=spec["group"],
            points=spec["points"],
            half_life=spec["half_life"],
            freq=freq,
            cap=cap,
            dedupe_key=spec.get("dedupe_key"),
            derived=bool(spec.get("derived", False)),
            horizon_us=horizon + grace if horizon else 0,
        )
    aliases = dict(raw["aliases"])
    for alias, target in aliases.items():
        if target not in types:
            raise check.fail(["aliases", alias], f"alias of unknown type {target!r}")
        if alias in types:
            raise check.fail(["aliases", alias], "an alias cannot also be an event type")

    def need_type(path: list[str | int], name: str) -> None:
        if aliases.get(name, name) not in types:
            raise check.fail(path, f"unknown event type {name!r}")

    def need_group(path: list[str | int], name: str) -> None:
        if name not in groups:
            raise check.fail(path, f"unknown group {name!r}")

    def need_stage(path: list[str | int], name: str) -> None:
        if name not in STAGES:
            raise check.fail(path, f"unknown stage {name!r}; stages: {', '.join(STAGES)}")

    flags = raw["email_flags"]
    for i, name in enumerate(flags["suppressed"]):
        need_type(["email_flags", "suppressed", i], name)
    need_type(["journey", "early_pricing", "type"], early["type"])
    need_type(["journey", "research_streak", "trigger"], streak["trigger"])
    need_type(["journey", "research_streak", "emit"], streak["emit"])
    if not types[streak["emit"]].derived:
        raise check.fail(["event_types", streak["emit"]], "the streak type must be derived: true")
    for i, group in enumerate(early["prior_groups"]):
        need_group(["journey", "early_pricing", "prior_groups", i], group)
    need_group(["journey", "early_pricing", "window_group"], early["window_group"])
    for i, group in enumerate(journey["mofu_guard"]["groups"]):
        need_group(["journey", "mofu_guard", "groups", i], group)
    stages = raw["stages"]
    for key in ("mql", "fast_lane"):
        for i, name in enumerate(stages[key]["from"]):
            need_stage(["stages", key, "from", i], name)
    for i, name in enumerate(stages["fast_lane"]["types"]):
        need_type(["stages", "fast_lane", "types", i], name)

    fit = raw["fit"]
    grades = [*fit["grades"], fit["default_grade"]]
    for grade in stages["mql"]["thresholds"]:
        if grade not in grades:
            raise check.fail(["stages", "mql", "thresholds", grade], f"unknown grade {grade!r}")
    for grade in grades:
        if grade not in stages["fast_lane"]["routes"]:
            raise check.fail(["stages", "fast_lane", "routes"], f"no route for grade {grade!r}")
    attributes = []
    for name, spec in fit["attributes"].items():
        ranges = tuple((r["min"], r.get("max"), float(r["points"])) for r in spec.get("ranges", []))
        attributes.append(
            FitAttribute(
                name=name,
                points={k.lower(): float(v) for k, v in spec.get("points", {}).items()},
                override={k.lower(): float(v) for k, v in spec.get("override", {}).items()},
                ranges=ranges,
            )
        )
    for i, name in enumerate(fit["company_attributes"]):
        if name not in fit["attributes"]:
            raise check.fail(["fit", "company_attributes", i], f"unknown attribute {name!r}")
    tz_name = raw["timezone"]
    try:
        tz = None if tz_name in ("UTC", "Etc/UTC", "Z") else ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise check.fail(
            ["timezone"], f"unknown time zone {tz_name!r}; e.g. Europe/Berlin"
        ) from None

    def route(spec: dict[str, Any], path: list[str | int]) -> Route:
        sla = spec["sla"]
        duration = None if sla is None else sla_us(sla)
        if sla is not None and duration is None:
            raise check.fail(
                [*path, "sla"], f"SLA {sla!r} is empty or zero; want e.g. PT1H, PT4H, P1D or null"
            )
        return Route(spec["route"], spec["priority"], sla, spec.get("task"), duration)

    mql, fast, bant = stages["mql"], stages["fast_lane"], raw["bant"]
    escalation = stages.get("escalation")
    rules = StageRules(
        grades=tuple(sorted(fit["grades"].items(), key=lambda kv: -kv[1])),
        default_grade=fit["default_grade"],
        fit_min=fit["min"],
        fit_max=fit["max"],
        disqualify_at=fit["disqualify_at_or_below"],
        mql_thresholds=dict(mql["thresholds"]),
        mql_from=frozenset(mql["from"]),
        cooldown_us=_days_us(mql["nurture_cooldown_days"]),
        bant_min_true=mql["handoff"]["bant_min_true"],
        ready=route(mql["handoff"]["ready"], ["stages", "mql", "handoff", "ready"]),
        qualify=route(mql["handoff"]["qualify"], ["stages", "mql", "handoff", "qualify"]),
        fast_lane_types=frozenset(aliases.get(n, n) for n in fast["types"]),
        fast_lane_from=frozenset(fast["from"]),
        fast_lane_routes={
            g: route(r, ["stages", "fast_lane", "routes", g]) for g, r in fast["routes"].items()
        },
        disqualified_route=route(fast["disqualified"], ["stages", "fast_lane", "disqualified"]),
        escalation=None if escalation is None else route(escalation, ["stages", "escalation"]),
        exit_below=stages["hysteresis"]["below"],
        exit_ticks=stages["hysteresis"]["consecutive_ticks"],
        nurture_reasons=frozenset(stages["sales"]["nurture_reasons"]),
        disqualify_reasons=frozenset(stages["sales"]["disqualify_reasons"]),
        budget_confirmed=bant["budget"]["confirmed_trait"],
        budget_amount=bant["budget"]["amount_trait"],
        budget_min=bant["budget"]["min_amount"],
        authority_seniority=frozenset(bant["authority"]["seniority"]),
        authority_roles=frozenset(bant["authority"]["buying_role"]),
        need_trait=bant["need"]["trait"],
        timeline_trait=bant["timeline"]["trait"],
        timeline_max=bant["timeline"]["max_months"],
    )
    mofu = journey["mofu_guard"]
    journey_rules = Journey(
        early_type=aliases.get(early["type"], early["type"]),
        early_min_prior=early["min_prior_entries"],
        early_prior_groups=frozenset(early["prior_groups"]),
        early_window_us=_days_us(early["window_days"]),
        early_window_group=early["window_group"],
        early_multiplier=early["multiplier"],
        early_tag=early["tag"],
        streak_trigger=aliases.get(streak["trigger"], streak["trigger"]),
        streak_window_us=_days_us(streak["window_days"]),
        streak_min_days=streak["min_distinct_days"],
        streak_emit=aliases.get(streak["emit"], streak["emit"]),
        mofu_groups=frozenset(mofu["groups"]),
        mofu_window_us=_days_us(mofu["window_days"]),
        mofu_exclude_tag=mofu["exclude_tag"],
    )
    retention = raw["retention"]
    return Model(
        id=raw["id"],
        version=raw["version"],
        tz_name=tz_name,
        tz=tz,
        eng_min=raw["engagement"]["min"],
        eng_max=raw["engagement"]["max"],
        groups=groups,
        types=types,
        aliases=aliases,
        email_invalid=frozenset(flags["invalid"]),
        email_suppressed=frozenset(aliases.get(n, n) for n in flags["suppressed"]),
        machine_open_types=frozenset(aliases.get(n, n) for n in flags["machine_open"]["types"]),
        machine_open_property=flags["machine_open"]["property"],
        fit_attributes=tuple(attributes),
        company_attributes=frozenset(fit["company_attributes"]),
        profile_traits=frozenset(
            [a.name for a in attributes]
            + ["seniority", "buying_role", rules.budget_confirmed, rules.budget_amount]
            + [rules.need_trait, rules.timeline_trait]
        ),
        journey=journey_rules,
        rules=rules,
        top_n=raw["explain"]["top_contributors"],
        grace_us=grace,
        keys_per_type=retention["dedupe_keys_per_type"],
        seen_us=_days_us(retention["seen_event_days"]),
        seen_max=retention.get("seen_event_max", SEEN_EVENT_MAX),
        raw=raw,
    )


def parse_model(text: str, source: str = "<model>") -> Model:
    """Parse and check model text (YAML or JSON); raises ModelError naming key path and line."""
    try:
        raw = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f", line {mark.line + 1}" if mark is not None else ""
        raise ModelError(f"{source}{at}: not valid YAML: {exc}") from None
    check = _Checker(source, root)
    if not isinstance(raw, dict):
        raise ModelError(f"{source}: want a mapping at the top level")
    retention = raw.get("retention")
    if isinstance(retention, dict) and "seen_event_ids" in retention:
        raise check.fail(
            ["retention", "seen_event_ids"],
            "replaced by seen_event_days: event ids are remembered for days of the lead's clock, "
            "not by count; write e.g. `seen_event_days: 37` (docs/scoring.md, Bounded state)",
        )
    errors = sorted(
        _schema_validator().iter_errors(raw), key=lambda e: list(map(str, e.instance_path))
    )
    if errors:
        first = errors[0]
        raise check.fail(list(first.instance_path), first.message)
    return _build(raw, check)


def load_model(path: str | Path | None = None) -> Model:
    """Load a model file; None loads the packaged default model (default-b2b)."""
    if path is None:
        text = (MODELS_DIR / DEFAULT_MODEL_FILE).read_text("utf-8")
        return parse_model(text, DEFAULT_MODEL_FILE)
    try:
        content = Path(path).read_text("utf-8")
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the model file: {exc.strerror}") from None
    return parse_model(content, str(path))


@functools.cache
def default_model() -> Model:
    """The packaged default model, loaded once."""
    return load_model(None)
