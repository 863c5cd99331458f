"""The Faust workarounds: refused on another release, and each doing what its docstring says."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from faust.tables.recovery import Recovery
from faust.types import TP
from intervaltree import IntervalTree

from stream.worker import faustfix


def test_a_faust_release_the_patches_were_not_written_for_is_refused() -> None:
    faustfix.check_version(faustfix.FAUST_VERSION)
    with pytest.raises(RuntimeError, match=r"written for faust-streaming 0\.15\.3, found 0\.16"):
        faustfix.check_version("0.16.0")


class Consumer:
    def __init__(self) -> None:
        self.sought: list[dict[TP, int]] = []

    async def seek_wait(self, offsets: dict[TP, int]) -> None:
        for offset in offsets.values():
            if not isinstance(offset, int) or offset < 0:
                raise ValueError("Offset must be a positive integer")  # as aiokafka does
        self.sought.append(dict(offsets))


async def test_recovery_leaves_out_partitions_a_rebalance_added_without_offsets() -> None:
    faustfix.install()
    built, fresh, empty = TP("c", 0), TP("c", 1), TP("c", 2)
    # A rebalance during the recovery added `fresh` with no offset yet; `empty` was built as
    # -1 (an empty changelog), which Faust itself seeks to 0.
    offsets: Counter[TP] = Counter({built: 41, empty: -1})
    offsets[fresh] = None  # type: ignore[assignment]
    consumer = Consumer()
    recovery: Any = object.__new__(Recovery)
    await recovery._seek_offsets(consumer, {built, fresh, empty}, offsets, "standby")
    assert consumer.sought == [{built: 41, empty: 0}]


@pytest.mark.parametrize(
    ("acked", "committed", "commit", "rest"),
    [
        ([5, 6, 7], 5, 8, []),
        ([7, 5, 6, 9], 5, 8, [9]),  # a hole at 8: the run stops before it
        ([6, 7], 5, None, [6, 7]),  # 5 never acknowledged: nothing to commit
        ([409, 409, 410, 410, 411, 412, 412], 410, 413, []),  # stale and duplicated entries
        ([3, 4], None, 5, []),  # nothing committed yet: the run from the lowest offset
        ([], 5, None, []),
    ],
)
def test_only_a_run_of_acknowledged_offsets_from_the_commit_is_committed(
    acked: list[int], committed: int | None, commit: int | None, rest: list[int]
) -> None:
    assert faustfix.new_offset(acked, committed) == (commit, rest)


def test_faust_commits_acknowledged_runs_only_and_ignores_its_gaps() -> None:
    from faust.transport.consumer import Consumer

    faustfix.install()
    tp = TP("t", 0)
    consumer: Any = type("Bookkeeping", (), {"_new_offset": Consumer._new_offset})()
    consumer._acked = {tp: [12, 10, 11, 10, 14]}
    consumer._acked_index = {tp: {10, 11, 12, 14}}
    consumer._committed_offset = {tp: 10}
    consumer._gap = {tp: IntervalTree.from_tuples([(13, 14)])}  # 13 never delivered
    assert consumer._new_offset(tp) == 13
    assert consumer._acked[tp] == [14] and consumer._acked_index[tp] == {14}
    assert tp not in consumer._gap
