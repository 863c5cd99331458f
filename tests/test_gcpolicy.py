"""The quieted collector: in effect during a run, everything restored after it, nested or not."""

from __future__ import annotations

import gc

from stream import gcpolicy
from stream.pipeline.replay import replay_lines
from stream.scoring import default_model


def test_thresholds_and_freeze_are_restored_after_nested_runs() -> None:
    before = gc.get_threshold()
    with gcpolicy.quiet_collector():
        assert gc.get_threshold()[0] == gcpolicy.YOUNG
        with gcpolicy.quiet_collector():
            gcpolicy.settle()
            assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == gcpolicy.YOUNG  # the outer run still holds it
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_settle_outside_a_run_freezes_nothing() -> None:
    gcpolicy.settle()
    assert gc.get_freeze_count() == 0


def test_a_replay_quiets_the_collector_only_while_it_runs() -> None:
    before = gc.get_threshold()
    line = (
        '{"event_id": "e1", "type": "web.page_view", "occurred_at": "2026-01-05T08:00:00Z",'
        ' "anonymous_id": "a-1"}'
    )
    seen = []
    for _item in replay_lines([line], default_model(), None):
        seen.append(gc.get_threshold()[0])
    assert seen and set(seen) == {gcpolicy.YOUNG}
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_an_abandoned_replay_restores_the_collector_when_closed() -> None:
    before = gc.get_threshold()
    lines = ['{"event_id": "e1", "type": "identify", "occurred_at": "2026-01-05T08:00:00Z",'
             ' "user_id": "u-1"}']  # fmt: skip
    run = replay_lines(lines, default_model(), None)
    next(run)
    assert gc.get_threshold()[0] == gcpolicy.YOUNG
    run.close()
    assert gc.get_threshold() == before
