"""A replay's output by component, and a whole replay put together from the parts that differ.

A threshold sweep replays, for each threshold, only the components it can change
(`stream.reports.sweep`); every other component ends as it does in the replay of the current
model (the *base*). `split` groups a replay's output by component, `signature` tells whether a
component's output differs from the base's (model versions aside: every variant has its own),
and `assemble` builds the `Run` the whole replay under the variant would have given — the base's
lines for unchanged components, with the variant's model version, and the variant's lines for
the changed ones — for the report code, which reads Runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from stream.pipeline.replay import ReplayStats
from stream.reports.components import Layout
from stream.reports.runs import Run
from stream.scoring.model import Model

Lead = tuple[list[dict[str, Any]], dict[str, Any] | None]
"""One lead's output: its transitions in order and its lead line."""
Parts = dict[int, dict[str, Lead]]
"""Component -> lead id -> output."""


def split(
    transitions: Iterable[dict[str, Any]], leads: Iterable[dict[str, Any]], layout: Layout
) -> Parts:
    """A replay's output by component; clock lines' leads are left out."""
    out: Parts = {}
    for tr in transitions:
        part = layout.component_of(tr["lead_id"])
        if part is not None:
            lead = out.setdefault(part, {}).setdefault(tr["lead_id"], ([], None))
            lead[0].append(tr)
    for line in leads:
        part = layout.component_of(line["lead_id"])
        if part is not None:
            known = out.setdefault(part, {}).get(line["lead_id"], ([], None))
            out[part][line["lead_id"]] = (known[0], line)
    return out


VARIANT_FIELDS = ("model_version", "threshold", "t")
"""What two variants' outputs differ in without any decision differing: each has its own model
version, and an MQL by score records the threshold of its grade (`t` is the reports' own)."""


def _bare(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in VARIANT_FIELDS}


def signature(leads: Mapping[str, Lead]) -> bytes:
    """A digest of one component's output but for `VARIANT_FIELDS`: two replays took the
    same decisions for the component's leads exactly when these agree (thresholds are read,
    never stored, so a transition's recorded threshold is the only trace a model's threshold
    leaves where it decided nothing differently)."""
    text = orjson.dumps(
        sorted(
            (lead, [_bare(tr) for tr in transitions], _bare(line) if line else None)
            for lead, (transitions, line) in leads.items()
        ),
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.blake2b(text, digest_size=16).digest()


def signatures(parts: Parts) -> dict[int, bytes]:
    return {part: signature(leads) for part, leads in parts.items()}


def changed(parts: Parts, base: Mapping[int, bytes]) -> Parts:
    """The components of `parts` whose output differs from the base's."""
    return {part: leads for part, leads in parts.items() if signature(leads) != base.get(part)}


@dataclass
class Variant:
    """A model, and its replay's output on the components where it differs from the base
    replay's (every other component ends as in the base)."""

    model: Model
    changed: Parts
    lines: int = 0
    """Lines this variant replayed (0: none, it equals the base)."""
    replays: int = 0


def _as_variant(item: dict[str, Any], model: Model) -> dict[str, Any]:
    """An output line as the variant's replay writes it: its model version and, on an MQL by
    score and its handoff, its threshold for the lead's grade."""
    out = {**item, "model_version": model.ref}
    if item.get("threshold") is not None:
        out["threshold"] = model.rules.mql_thresholds[item["grade"]]
    return out


def assemble(base: Run, base_parts: Parts, variant: Variant) -> Run:
    """The Run of the whole history under the variant's model: the base's output for the
    components on which it decides nothing differently, the variant's for the others (taken
    from the replay of a neighbouring value when it decided nothing differently from that
    one), each as the variant writes it: its model version and thresholds. Transitions keep
    the base's order, the changed ones follow by time."""
    version = variant.model.ref
    drop = {lead for part in variant.changed for lead in base_parts.get(part, {})}
    transitions = [
        _as_variant(tr, variant.model) for tr in base.transitions if tr["lead_id"] not in drop
    ]
    leads = {
        lead: {**line, "model_version": version}
        for lead, line in base.leads.items()
        if lead not in drop
    }
    extra: list[dict[str, Any]] = []
    for part in variant.changed.values():
        for lead, (trs, line) in part.items():
            extra.extend(_as_variant(tr, variant.model) for tr in trs)
            if line is not None:
                leads[lead] = {**line, "model_version": version}
    extra.sort(key=lambda tr: (tr["t"], tr["lead_id"], tr["seq"]))
    stats = ReplayStats(base.stats.events, base.stats.bad_lines, base.stats.after_until)
    return Run(variant.model, transitions + extra, leads, {}, stats, [])
