"""The co-partition merge: acceptance order across topics, waiting only for inputs behind."""

from __future__ import annotations

from stream.worker.order import CoPartitionMerge

TOPICS = ["web", "email", "by_lead"]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_records_go_by_stamp_once_every_other_input_is_known() -> None:
    clock = Clock()
    merge: CoPartitionMerge[str] = CoPartitionMerge(TOPICS, 0.5, clock)
    behind = {"email"}  # the email partition has records not yet handed over
    caught_up = lambda topic, _head: topic not in behind  # noqa: E731
    merge.add("web", 0, 20, "page view (accepted second)")
    assert merge.release(0, caught_up) == []  # email may still hold an earlier record
    merge.add("email", 0, 10, "click (accepted first)")
    behind.clear()  # handed over: nothing more is waiting there
    assert merge.release(0, caught_up) == ["click (accepted first)", "page view (accepted second)"]


def test_a_caught_up_input_does_not_hold_anything() -> None:
    merge: CoPartitionMerge[int] = CoPartitionMerge(TOPICS, 0.5, Clock())
    merge.add("web", 3, 5, 1)
    merge.add("web", 3, 6, 2)
    assert merge.release(3, lambda _t, _h: True) == [1, 2]
    assert merge.waiting() == []


def test_an_input_that_stays_behind_is_waited_for_at_most_max_wait() -> None:
    clock = Clock()
    merge: CoPartitionMerge[int] = CoPartitionMerge(TOPICS, 0.5, clock)
    merge.add("by_lead", 1, 7, 1)
    assert merge.release(1, lambda _t, _h: False) == []
    assert merge.waiting() == [1] and not merge.overdue(1)
    assert not merge.ready(1, lambda _t, _h: False)
    clock.now = 0.6
    assert merge.overdue(1) and merge.ready(1, lambda _t, _h: False)
    assert merge.release(1, lambda _t, _h: False) == [1]


def test_equal_stamps_go_in_topic_order_and_partitions_are_apart() -> None:
    merge: CoPartitionMerge[str] = CoPartitionMerge(TOPICS, 0.5, Clock())
    merge.add("by_lead", 0, 5, "hop")
    merge.add("web", 0, 5, "view")
    merge.add("email", 1, 1, "other partition")
    assert merge.release(0, lambda _t, _h: True) == ["view", "hop"]
    merge.drop([0])
    assert merge.waiting() == []


def test_a_release_can_be_bounded_and_the_rest_stays_held_in_order() -> None:
    """The batch loop releases a bounded number per round, so one round never blocks the
    event loop (and the group heartbeat) for long."""
    merge: CoPartitionMerge[int] = CoPartitionMerge(TOPICS, 0.5, Clock())
    for n in range(5):
        merge.add("web", 0, n, n)
    merge.add("email", 1, 0, 10)
    assert merge.held == 6
    assert merge.release(0, lambda _t, _h: True, limit=2) == [0, 1]
    assert merge.held == 4
    assert merge.release(0, lambda _t, _h: True) == [2, 3, 4]
    merge.drop([0])
    assert merge.held == 0


def test_the_wait_counts_from_when_an_input_held_the_partition_up() -> None:
    """A record that sat in the queue behind others (a batch consumer holds many) has not
    been waiting for the input that is behind: it gets the whole wait once that input
    holds the partition up, and the wait ends when nothing does."""
    clock = Clock()
    merge: CoPartitionMerge[int] = CoPartitionMerge(TOPICS, 0.5, clock)
    behind = {"email"}
    caught_up = lambda topic, _head: topic not in behind  # noqa: E731
    merge.add("web", 0, 1, 1)
    merge.add("web", 0, 2, 2)
    clock.now = 10.0  # queued long ago; email falls behind only now
    assert merge.release(0, caught_up) == []
    clock.now = 10.4
    assert merge.release(0, caught_up) == [] and not merge.overdue(0)
    clock.now = 10.5
    assert merge.release(0, caught_up, limit=1) == [1]  # timed out: heads go, one by one
    assert merge.release(0, caught_up) == [2]
    merge.add("web", 0, 3, 3)
    behind.clear()
    assert merge.release(0, caught_up) == [3]
    behind.add("email")
    merge.add("web", 0, 4, 4)
    assert merge.release(0, caught_up) == []  # a new wait: it starts again


def test_a_fetch_added_at_once_is_held_and_released_as_added_one_by_one() -> None:
    one: CoPartitionMerge[str] = CoPartitionMerge(TOPICS, 0.5, Clock())
    many: CoPartitionMerge[str] = CoPartitionMerge(TOPICS, 0.5, Clock())
    web = [(10, "w1"), (30, "w2"), (50, "w3")]
    email = [(20, "e1"), (40, "e2")]
    for stamp, item in web:
        one.add("web", 2, stamp, item)
    for stamp, item in email:
        one.add("email", 2, stamp, item)
    many.add_all("web", 2, web)
    many.add_all("email", 2, email)
    many.add_all("by_lead", 2, [])
    assert many.held == one.held == 5
    assert many.queued("web", 2) == 3 and many.queued("by_lead", 2) == 0
    caught_up = lambda _t, _h: True  # noqa: E731
    assert many.release(2, caught_up) == one.release(2, caught_up) == ["w1", "e1", "w2", "e2", "w3"]
    assert many.held == 0
