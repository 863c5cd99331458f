"""Offset tracking: commit only up to the lowest offset not yet settled."""

from __future__ import annotations

from aiokafka import TopicPartition
from hypothesis import given
from hypothesis import strategies as st

from stream.notify.consumer import OffsetTracker
from stream.notify.sinks import Handoff

from .conftest import handoff_headers, make_handoff

TP = TopicPartition("leads.handoff", 0)


def test_commits_lowest_unsettled() -> None:
    tracker = OffsetTracker()
    for offset in (10, 11, 12, 13):
        tracker.add(TP, offset)
    assert tracker.position(TP) == 10
    tracker.settle(TP, 11)
    tracker.settle(TP, 13)
    assert tracker.position(TP) == 10  # 10 still open: a crash must redeliver it
    tracker.settle(TP, 10)
    assert tracker.position(TP) == 12
    tracker.settle(TP, 12)
    assert tracker.position(TP) == 14
    assert tracker.uncommitted() == {TP: 14}
    tracker.committed({TP: 14})
    assert tracker.uncommitted() == {}


@given(st.permutations(list(range(20))), st.integers(min_value=0, max_value=20))
def test_position_never_passes_an_unsettled_offset(order: list[int], settled: int) -> None:
    tracker = OffsetTracker()
    for offset in range(20):
        tracker.add(TP, offset)
    done = set(order[:settled])
    for offset in done:
        tracker.settle(TP, offset)
    position = tracker.position(TP)
    assert position is not None
    assert all(o in done for o in range(position))
    assert position == 20 or position not in done


def test_unknown_partition_has_no_position() -> None:
    assert OffsetTracker().position(TP) is None


def test_handoff_lane_from_priority() -> None:
    assert make_handoff(priority="P1").fast
    assert not make_handoff(priority="P2").fast
    # No ce_priority header: fall back to data.route.priority.
    value = b'{"lead_id": "l", "route": {"priority": "P1"}}'
    headers = [h for h in handoff_headers("c") if h[0] != "ce_priority"]
    handoff = Handoff.from_record(
        topic="t", partition=0, offset=0, key=b"l", value=value, headers=headers
    )
    assert handoff.fast
