"""The guard against records Faust fetched but never delivered."""

from __future__ import annotations

import time

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
