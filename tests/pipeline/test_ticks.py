"""The tick scheduler fires each filed lead once, strictly after its instant, per partition."""

from __future__ import annotations

from stream.pipeline.ticks import TickScheduler, due_key


def test_fires_after_the_instant_not_at_it() -> None:
    due: dict[str, str] = {}
    ticks = TickScheduler(due)
    ticks.schedule(0, "u1", 10.0)
    ticks.schedule(0, "u2", 10.0)
    ticks.schedule(0, "u1", 10.0)  # filed twice, fired once
    assert ticks.advance(0, 10.0) == []  # an event stamped exactly at the tick comes first
    assert ticks.advance(0, 10.0001) == [(10.0, ["u1", "u2"])]
    assert due == {}
    assert ticks.advance(0, 12.0) == []


def test_partitions_keep_their_own_stream_time() -> None:
    ticks = TickScheduler({})
    ticks.schedule(0, "a", 5.0)
    ticks.schedule(1, "b", 5.0)
    assert ticks.advance(1, 6.0) == [(5.0, ["b"])]
    assert ticks.advance(0, 4.0) == []
    assert ticks.advance(0, 3.0) == []  # stream time never goes back
    assert ticks.advance(0, 5.5) == [(5.0, ["a"])]


def test_rebuilt_from_the_table_after_a_rebalance() -> None:
    due: dict[str, str] = {}
    TickScheduler(due).schedule(2, "u9", 7.25)
    assert due_key(2, 7.25) in due
    fresh = TickScheduler(due)  # a restarted worker reads only the small due-table
    assert fresh.advance(2, 8.0) == [(7.25, ["u9"])]


def test_an_instant_inside_a_minute_is_filed_at_the_next_minute() -> None:
    ticks = TickScheduler({})
    due = 10.0 + 20.0 / 86400  # 00:00:20 on day 10: an SLA deadline, not a midnight
    ticks.schedule(0, "u1", due)
    assert ticks.advance(0, 10.0 + 30.0 / 86400) == []  # before the filing minute
    fired = ticks.advance(0, 10.0 + 61.0 / 86400)
    assert fired == [(10.0 + 60.0 / 86400, ["u1"])]  # ticked at 00:01, which is >= due


def test_the_schedule_waits_for_the_batch_and_a_dropped_batch_leaves_it_due() -> None:
    from stream.pipeline.staging import StagedMapping

    table: dict[str, str] = {}
    TickScheduler(table).schedule(3, "u1", 10.0)
    staged = StagedMapping(table)
    ticks = TickScheduler(staged)
    assert ticks.advance(3, 10.5) == [(10.0, ["u1"])]
    ticks.schedule(3, "u1", 11.0)  # re-filed for its next tick
    assert "3:14400" in table and "3:14400" not in staged  # popped, not yet landed
    assert sorted(staged) == ["3:15840"] and len(staged) == 1
    staged.take()  # the batch was dropped: nothing of it reaches the table
    assert table == {"3:14400": '["u1"]'}
    # The records come again after the rebalance: the tick fires once more, from the table.
    ticks.forget_partitions()
    assert ticks.advance(3, 10.5) == [(10.0, ["u1"])]
    assert staged.take() == {"3:14400": None}


def test_stream_time_starts_again_after_a_rebalance() -> None:
    ticks = TickScheduler({})
    ticks.advance(1, 30.0)
    ticks.schedule(1, "u2", 20.0)
    ticks.forget_partitions()
    # Read again from the commit: an earlier record does not find stream time at day 30,
    # so the tick at day 20 waits for records past it, as in replay.
    assert ticks.advance(1, 12.0) == []
    assert ticks.advance(1, 20.5) == [(20.0, ["u2"])]
