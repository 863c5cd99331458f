"""The guard against records Faust fetched but never delivered."""

from __future__ import annotations

import time

import pytest

from stream.worker import gapguard
from stream.worker.gapguard import GapGuard, Verdict

TP = ("leads.events.web", 1)


def test_in_order_records_pass_and_a_hole_asks_for_a_seek_back() -> None:
    guard = GapGuard()
    guard.expect({TP: 10})
    assert [guard.admit(TP, o) for o in (10, 11, 12)] == [Verdict.NEXT] * 3
    # 13..49 never arrived: neither 50 nor anything after it is processed before them.
    assert guard.admit(TP, 50) is Verdict.HOLE
    assert guard.admit(TP, 51) is Verdict.HOLE
    assert guard.holes == {TP: 13}
    # After the seek back: 13 is next; what was processed already is a repeat.
    assert guard.admit(TP, 12) is Verdict.REPEAT
    assert guard.admit(TP, 13) is Verdict.NEXT
    assert guard.holes == {}


def test_the_first_record_must_be_the_committed_offset() -> None:
    guard = GapGuard()
    guard.expect({TP: 0})
    assert guard.admit(TP, 37) is Verdict.HOLE
    assert guard.holes == {TP: 0}


def test_a_partition_read_past_the_guard_while_quiet_is_stalled() -> None:
    guard = GapGuard(stall_seconds=0.05)
    guard.expect({TP: 5})
    assert guard.stalled({TP: 900}) == {}  # not quiet long enough yet
    time.sleep(0.06)
    assert guard.stalled({TP: 5}) == {}  # nothing fetched beyond what arrived
    assert guard.stalled({TP: 900}) == {TP: 5}
    assert guard.stalled({TP: 900}) == {}  # the seek gets time to take effect


def test_an_unknown_partition_is_taken_as_it_comes() -> None:
    guard = GapGuard()
    assert guard.admit(TP, 7) is Verdict.NEXT
    assert guard.admit(TP, 8) is Verdict.NEXT


def test_a_commit_that_stays_behind_while_idle_is_read_again_from_it() -> None:
    guard = GapGuard(stall_seconds=0.02)
    guard.expect({TP: 100})
    for offset in range(100, 120):
        guard.admit(TP, offset)
    assert guard.uncommitted({TP: 120}) == {}  # committed all it processed
    assert guard.uncommitted({TP: 110}) == {}  # behind, but not for long yet
    time.sleep(0.05)
    assert guard.uncommitted({TP: 110}) == {TP: 110}
    # Read again from the commit: those records are processed (as no-ops) and acknowledged.
    assert guard.next[TP] == 110 and guard.admit(TP, 110) is Verdict.NEXT
    assert guard.uncommitted({TP: 111}) == {}  # the clock starts again


def test_a_commit_that_catches_up_resets_the_clock() -> None:
    guard = GapGuard(stall_seconds=0.02)
    guard.expect({TP: 0})
    for offset in range(10):
        guard.admit(TP, offset)
    assert guard.uncommitted({TP: 5}) == {}
    time.sleep(0.05)
    assert guard.uncommitted({TP: 10}) == {}  # caught up: forgotten
    assert guard.uncommitted({TP: 5}) == {}  # behind again: a new clock
    assert guard.uncommitted({TP: None}) == {}  # Faust knows no commit: nothing to go by


OTHER = ("leads.events.email", 3)


def test_a_quiet_partition_of_a_busy_worker_is_backpressure_not_a_stall() -> None:
    # Under load (a worker far behind), records of the other partitions keep arriving while
    # one partition waits its turn: repairing it then read hundreds of records again, over
    # and over. A busy worker waits ten times longer.
    guard = GapGuard(stall_seconds=0.05, busy_factor=10)
    guard.expect({TP: 5, OTHER: 0})
    for n in range(8):
        time.sleep(0.02)
        guard.admit(OTHER, n)  # the worker is busy with another partition
        assert guard.stalled({TP: 900}) == {}
    time.sleep(0.06)  # now nothing arrives at all: a stall after all
    assert guard.stalled({TP: 900, OTHER: 8}) == {TP: 5}


def test_a_busy_worker_still_repairs_a_partition_starved_for_long() -> None:
    guard = GapGuard(stall_seconds=0.01, busy_factor=5)
    guard.expect({TP: 5, OTHER: 0})
    for n in range(12):  # 60 ms of another partition's records: past 5 x 10 ms
        time.sleep(0.005)
        guard.admit(OTHER, n)
    assert guard.stalled({TP: 900}) == {TP: 5}


def test_a_slow_commit_of_a_busy_worker_is_not_taken_for_a_stuck_one() -> None:
    guard = GapGuard(stall_seconds=0.02, busy_factor=10)
    guard.expect({TP: 100, OTHER: 0})
    for offset in range(100, 110):
        guard.admit(TP, offset)
    assert guard.uncommitted({TP: 105}) == {}
    for n in range(5):  # 50 ms busy elsewhere: past 2 x 20 ms, within 2 x 200 ms
        time.sleep(0.01)
        guard.admit(OTHER, n)
        assert guard.uncommitted({TP: 105}) == {}


def test_a_stall_a_seek_does_not_clear_is_repaired_less_and_less_often(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(gapguard.time, "monotonic", lambda: now[0])

    def after(seconds: float) -> dict[object, int]:
        now[0] += seconds
        return dict(guard.stalled({TP: 900}))

    guard = GapGuard(stall_seconds=3.0)
    guard.expect({TP: 5})
    assert after(3.0) == {TP: 5}  # the first repair after 3 s
    assert after(5.0) == {}  # the second waits 6 s
    assert after(1.0) == {TP: 5}
    assert after(11.0) == {}  # the third 12 s
    assert after(1.0) == {TP: 5}
    for _ in range(4):  # 24, 48, then never more than a minute
        after(60.0)
    assert after(59.0) == {} and after(1.0) == {TP: 5}
    now[0] += 0.5
    guard.admit(TP, 5)  # a record arrives: the stall is over, the next waits 3 s again
    assert after(3.0) == {TP: 6}
