"""Shadow scoring in the worker's pipeline: the candidate's transitions equal its replay, on
several partitions with identity hops, and nothing of it reaches a handoff or a snapshot."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson

from stream.jsonschemas import validator
from stream.pipeline.replay import replay_lines
from stream.pipeline.shadow import SHADOW_BYTES
from stream.reports.history import simulated_history
from stream.reports.runs import with_thresholds
from stream.scoring import default_model
from tests.worker.cluster import CRM, EMAIL, SECRET, WEB, Cluster

TOPIC = {"web": WEB, "product": WEB, "email": EMAIL, "crm": CRM, "social": "leads.events.social"}


def _by_lead(lines: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in lines:
        out[line["lead_id"]].append(line)
    return dict(out)


def test_shadow_transitions_equal_the_replay_of_the_candidate() -> None:
    live = default_model()
    candidate = with_thresholds(live, {"A": 25, "B": 30}, "shadow")
    lines = simulated_history(80, 11)
    c = Cluster(4, live, shadow=candidate)
    for n, line in enumerate(lines):
        body = orjson.loads(line)
        c.send(body, TOPIC[body["channel"]])
        if n % 3 == 0:  # by-lead hops arrive late now and then, as across partitions
            c.deliver()
    c.deliver()
    c.expire()
    assert not c.dead
    shadow = [orjson.loads(value) for _key, value in c.shadow]
    check = validator("shadow-transition.schema.json")
    for line in shadow:
        check.validate(line)
    assert all(
        key.decode() == line["lead_id"] for (key, _v), line in zip(c.shadow, shadow, strict=True)
    )
    assert len(shadow) > 100 and {tr["model_version"] for tr in shadow} == {candidate.ref}
    assert all(not line["lead_id"].startswith("\x00") for line in shadow)
    same_as_replay(shadow, replay_lines(lines, candidate, None, secret=SECRET))
    # the live model's own transitions, by the same measure: the shadow changed nothing there
    same_as_replay(
        [t.to_dict() for t in c.transitions], replay_lines(lines, live, None, secret=SECRET)
    )
    # the candidate decided differently, and nothing of it went to a handoff or a snapshot
    live_moves = [(t.lead_id, t.to_stage, t.reason) for t in c.transitions]
    assert live_moves != [(t["lead_id"], t["to"], t["reason"]) for t in shadow]
    assert len(c.handoffs) == len(c.transitions)
    assert all(orjson.loads(v)["model_version"] == live.ref for _k, v in c.handoffs)
    assert any(k.startswith(SHADOW_BYTES) for table in c.states.values() for k in table)


TIMERS = {"decayed", "sla_breached"}


def same_as_replay(mine: list[dict[str, Any]], replay: Any) -> None:
    """Per lead, the same transitions as the replay, in order; the replay may have more at the
    end, from the timers it fires at the history's last instant (a partition fires them only
    once its own stream time passes them)."""
    theirs = _by_lead([line for line in replay if line["kind"] == "transition"])
    ours = _by_lead(mine)
    assert set(ours) <= set(theirs)
    for lead, expected in theirs.items():
        got = ours.get(lead, [])
        assert got == expected[: len(got)], lead
        assert all(tr["reason"] in TIMERS for tr in expected[len(got) :]), lead
