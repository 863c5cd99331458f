"""Timers catch up at once, and a hand-raiser is handed to sales once."""

from __future__ import annotations

from datetime import datetime

from stream.pipeline.replay import replay_lines
from tests.worker.cluster import CRM, SECRET, VP, WEB, Cluster, email_click, event
from tests.worker.test_identity import apart


def mql(c: Cluster, user: str, when: str) -> None:
    c.send(event("identify", f"{when}T09:00:00Z", user=user, traits=VP), CRM)
    for n in range(3):
        c.send(email_click(f"{when}T10:00:00Z", f"{user}-m{n}", user=user), CRM)
    c.send(event("trial.signup", f"{when}T10:00:00Z", user=user), CRM)
    c.send(
        event(
            "webinar.attended",
            f"{when}T10:00:00Z",
            user=user,
            channel="crm",
            properties={"webinar_id": f"{user}-w"},
        ),
        CRM,
    )


def test_an_idle_lead_gets_every_due_tick_when_its_partition_moves_weeks_ahead() -> None:
    c = Cluster(1)
    mql(c, "quiet", "2026-03-02")
    assert [m[2] for m in c.moves("quiet")] == ["lead", "mql"]
    # Another lead of the same partition: one event two months later. The quiet lead's 60
    # daily ticks fire now, in order: its engagement decays below 20 and after three low
    # ticks in a row it goes to nurture, stamped at that tick, not at the other lead's event.
    c.send(event("web.page_view", "2026-05-01T12:00:00Z", user="busy"), WEB)
    decayed = [t for t in c.transitions if t.lead_id == "quiet" and t.reason == "decayed"]
    assert len(decayed) == 1
    assert decayed[0].to_stage == "nurture"
    state = c.state("quiet")
    assert state is not None and state.stage == "nurture"
    assert decayed[0].at < 20574.5  # well before the other lead's event (2026-05-01)
    # and replay of the same events agrees, transition for transition
    replayed = [
        o
        for o in replay_lines([v.decode() for v in c.accepted], c.model, None, secret=SECRET)
        if o["kind"] == "transition" and o["lead_id"] == "quiet"
    ]
    assert [(o["to"], o["at"]) for o in replayed] == [
        (t.to_stage, t.to_dict()["at"]) for t in c.transitions if t.lead_id == "quiet"
    ]


def test_a_fast_laned_visitor_that_identifies_is_handed_over_once() -> None:
    anon, user = apart("cookie", "user")
    c = Cluster(4)
    c.send(event("form.contact_sales", "2026-03-02T10:00:00Z", anon=anon), WEB)
    c.send(event("identify", "2026-03-04T10:00:00Z", anon=anon, user=user, traits=VP), CRM)
    c.deliver()
    fast = [t for t in c.transitions if t.reason == "fast_lane"]
    assert [(t.lead_id, t.from_stage, t.to_stage) for t in fast] == [
        (f"anon:{anon}", "anonymous", "sales_ready")
    ]
    # the identified lead moves once, with a reason that says what happened
    assert c.moves(user) == [(user, "anonymous", "sales_ready", "identified")]
    identified = next(t for t in c.transitions if t.lead_id == user)
    assert (identified.grade, identified.route, identified.priority) == ("A", "ae", "P1")


def test_advancing_an_idle_partitions_clock_fires_its_due_ticks_like_a_later_event() -> None:
    """The batch loop moves an idle partition's stream time by the wall clock itself
    (`advance_clock`), where the per-record path sent a `clock` record through Kafka."""
    by_clock, by_event = Cluster(1), Cluster(1)
    for c in (by_clock, by_event):
        mql(c, "quiet", "2026-03-02")
    by_event.send(event("web.page_view", "2026-05-01T12:00:00Z", user="busy"), WEB)
    at = event("web.page_view", "2026-05-01T12:00:00Z")["occurred_at"]
    t_us = int(datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp() * 1_000_000)
    emit = by_clock.pipeline.advance_clock(0, t_us)
    by_clock._land(emit)

    def moves(c: Cluster) -> list[tuple[float, str, str, str, float]]:
        return [
            (t.at, t.from_stage, t.to_stage, t.reason, t.engagement)
            for t in c.transitions
            if t.lead_id == "quiet"
        ]

    assert moves(by_clock) == moves(by_event)
    assert moves(by_clock)[-1][3] == "decayed"
    clocked, evented = by_clock.state("quiet"), by_event.state("quiet")
    assert clocked is not None and evented is not None
    assert (clocked.stage, clocked.clock) == (evented.stage, evented.clock)
    assert by_clock.pipeline.advance_clock(0, t_us).transitions == []  # fired once
