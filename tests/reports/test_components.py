"""Identity components and clock lines: a partial replay ends its leads as the whole one does."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from stream.reports.components import Layout, is_clock, sla_minutes
from stream.reports.history import History, simulated_history
from stream.reports.parts import split
from stream.reports.pool import _until
from stream.reports.runs import run_lines
from stream.scoring.events import US_PER_DAY, format_us
from stream.scoring.model import default_model

from .histories import GRADE_A, HOUR_US, by_time, event, lead_events, spread


def _line(kind: str, at_us: int, **fields: Any) -> str:
    return orjson.dumps(
        {"event_id": f"{kind}-{at_us}-{sorted(fields.items())}", "type": kind,
         "channel": "web", "occurred_at": format_us(at_us), **fields}
    ).decode()  # fmt: skip


def test_ids_that_meet_make_one_component_and_lead_ids_find_it() -> None:
    t = spread(0)
    lines = [
        _line("web.page_view", t, anonymous_id="cookie-1"),
        _line("web.page_view", t + 1, anonymous_id="cookie-2"),
        _line("identify", t + 2, anonymous_id="cookie-1", user_id="u-1"),
        _line("email.open", t + 3, email=" Ann@Example.com "),
        _line("identify", t + 4, user_id="u-1", email="ann@example.com"),
        _line("web.page_view", t + 5, lead_id="anon:cookie-2"),
        _line("web.page_view", t + 6, user_id="u-9"),
    ]
    history = History.from_lines(lines)
    layout = Layout.of(history)
    c = layout.component
    assert c[0] == c[2] == c[3] == c[4]  # cookie, user and (normalised) email meet
    assert c[1] == c[5] != c[0]  # a lead id written out joins its cookie
    assert len({c[0], c[1], c[6]}) == 3
    run = run_lines(history.lines, default_model())
    for lead in run.leads:  # every lead the replay made belongs to one component
        assert layout.component_of(lead) in set(c)
    assert layout.component_of("~reports-clock~12") is None and is_clock("~reports-clock~12")
    with pytest.raises(ValueError, match="not in the history's components"):
        layout.component_of("u-unknown")


def test_late_lines_are_irregular_and_get_clock_lines() -> None:
    t = spread(0)
    lines = [
        _line("web.page_view", t, user_id="a"),
        _line("web.page_view", t + HOUR_US, user_id="b"),
        _line("web.page_view", t + 30 * 60_000_000, user_id="c"),  # late: b was later
        _line("web.page_view", t + 2 * HOUR_US, user_id="d"),
        _line("web.page_view", t + 3 * HOUR_US, user_id="e"),
    ]
    layout = Layout.of(History.from_lines(lines))
    assert layout.irregular == {layout.component[2]}
    assert layout.pinned == {1, 3}  # the line that set the stream time, the next regular one
    assert layout.st_us == [t, t + HOUR_US, t + HOUR_US, t + 2 * HOUR_US, t + 3 * HOUR_US]
    picked = layout.replay_input(lines, [layout.component[4]], [])
    assert picked[1] == lines[2] and picked[-1] == lines[4]  # c always, e asked for
    clocks = [orjson.loads(x) for x in picked if x not in lines]
    assert [c["occurred_at"] for c in clocks] == [
        format_us(t + HOUR_US, "us"),
        format_us(t + 2 * HOUR_US, "us"),
    ]


def test_a_repeated_event_id_or_a_legacy_alias_record_does_not_move_stream_time() -> None:
    t = spread(0)
    first = _line("web.page_view", t, user_id="a")
    again = {**orjson.loads(first), "occurred_at": format_us(t + HOUR_US)}  # a resend, restamped
    alias = _line("identity.alias", t + 2 * HOUR_US, user_id="b", anonymous_id="x")
    lines = [first, orjson.dumps(again).decode(), alias, _line("web.page_view", t + 1, user_id="c")]
    layout = Layout.of(History.from_lines(lines))
    assert layout.st_us == [t, t, t, t + 1]
    assert layout.irregular == {layout.component[0], layout.component[2]}


def _escalation_history() -> list[str]:
    """u-late becomes an MQL (SLA 1 day); sales accepts it 13 hours later, but that record
    comes in late, after u-other's events have moved the stream time past the SLA: the whole
    replay escalates u-late first, as the live worker would have."""
    start = spread(0)
    events = lead_events("u-late", 40, start, GRADE_A)
    events.append(event("web.page_view", start + 26 * HOUR_US, "u-other"))
    events.append(event("web.page_view", start + 30 * HOUR_US, "u-other"))
    lines = by_time(events)
    accepted = event("sales.accepted", start + 13 * HOUR_US, "u-late")
    return [*lines, orjson.dumps(accepted).decode()]  # after the others: late


def test_clock_lines_make_a_partial_replay_end_as_the_whole_one() -> None:
    lines = _escalation_history()
    history = History.from_lines(lines)
    layout = Layout.of(history)
    model = default_model()
    whole = run_lines(lines, model)
    late = layout.component_of("u-late")
    assert late in layout.irregular
    expected = split(whole.transitions, whole.leads.values(), layout)
    assert any(tr["reason"] == "sla_breached" for tr in whole.transitions)

    alone = run_lines([lines[i] for i in layout.members[late]], model, _until(layout))
    assert split(alone.transitions, alone.leads.values(), layout)[late] != expected[late]
    assert not any(tr["reason"] == "sla_breached" for tr in alone.transitions)  # the control

    minutes = sla_minutes(tr for trs, _ in expected[late].values() for tr in trs)
    partial = run_lines(layout.replay_input(lines, [late], minutes), model, _until(layout))
    assert split(partial.transitions, partial.leads.values(), layout)[late] == expected[late]


def test_every_component_replayed_alone_with_its_clock_lines_ends_as_in_the_whole_replay() -> None:
    """On the demo's journeys (merges, escalations, MQL exits by daily ticks, sales answers),
    with some records delayed so that stream time runs ahead of them."""
    lines = simulated_history(40, 3)
    for i in range(40, len(lines) - 30, 97):  # a batch uploaded a little late
        lines.insert(i + 25, lines.pop(i))
    history = History.from_lines(lines)
    layout = Layout.of(history)
    assert layout.irregular
    model = default_model()
    whole = run_lines(history.lines, model)
    expected = split(whole.transitions, whole.leads.values(), layout)
    assert any(tr["reason"] == "sla_breached" for tr in whole.transitions)
    groups = sorted(layout.members)
    for part in (groups[i : i + 7] for i in range(0, len(groups), 7)):
        minutes = sla_minutes(
            tr for p in part for trs, _ in expected.get(p, {}).values() for tr in trs
        )
        run = run_lines(layout.replay_input(history.lines, part, minutes), model, _until(layout))
        got = split(run.transitions, run.leads.values(), layout)
        for p in part:
            assert got[p] == expected[p], p


def _tr(at_us: int, frm: str, to: str, reason: str, sla: str | None) -> dict[str, Any]:
    return {"at": format_us(at_us, "us"), "from": frm, "to": to, "reason": reason, "sla": sla}


def test_sla_minutes_are_the_deadlines_the_engine_files() -> None:
    minute = 60_000_000
    mql = spread(0) + 90 * minute + 1  # 10:30:00.000001
    raised = spread(0) + 7 * minute  # a visitor's hand-raise, identified later
    minutes = sla_minutes(
        [
            _tr(raised, "anonymous", "sales_ready", "fast_lane", "PT4H"),
            _tr(mql, "lead", "mql", "score", "P1D"),
            _tr(mql + US_PER_DAY, "mql", "mql", "sla_breached", "PT1H"),  # starts no timer
            _tr(mql + 5, "lead", "sales_ready", "identified", "PT1H"),
        ]
    )
    due = {
        (raised + 4 * HOUR_US) // minute,  # a whole minute: its own
        (mql + US_PER_DAY) // minute + 1,  # rounded up to the next minute
        (raised + HOUR_US) // minute,  # the merge keeps the hand-raise's start
        (mql + 5 + HOUR_US) // minute + 1,  # and the identified handoff's own instant
    }
    assert due <= minutes
    assert all(
        min(abs(m - d) for d in due) <= 1 or m == (mql + HOUR_US) // minute + 1 for m in minutes
    )  # neighbours of boundaries, and every entry + the merge SLA
    assert (mql + US_PER_DAY + HOUR_US) // minute + 1 not in minutes  # no timer after a breach
