"""stream/metrics.py: labelled counters with a closed set of label values have every series
from the start (issue 28, item 12: "Dropped events by reason" had no series until the first
drop, so its panel and rate showed no data instead of 0)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from stream import metrics

FRESH = (
    "import prometheus_client, stream.metrics; print(prometheus_client.generate_latest().decode())"
)


def fresh_exposition() -> str:
    """/metrics text of a process that has only imported stream.metrics (nothing counted)."""
    return subprocess.run(
        [sys.executable, "-c", FRESH], check=True, capture_output=True, text=True
    ).stdout


@pytest.mark.parametrize(
    "sample",
    [
        'leadstream_collector_events_dropped_total{reason="machine_open"} 0.0',
        'leadstream_collector_events_dropped_total{reason="machine_click"} 0.0',
        'leadstream_collector_refusals_total{reason="signature_invalid"} 0.0',
        'leadstream_events_unmapped_total{kind="webhook"} 0.0',
        'leadstream_worker_events_total{outcome="dead_letter"} 0.0',
        'leadstream_identity_merges_total{kind="conflict"} 0.0',
        'leadstream_worker_order_released_total{why="timeout"} 0.0',
    ],
)
def test_closed_label_sets_start_at_zero(sample: str) -> None:
    assert sample in fresh_exposition().splitlines()


def test_every_listed_counter_is_a_labelled_counter_of_ours() -> None:
    for counter, values in metrics.CLOSED_LABELS:
        assert counter._labelnames, counter  # a counter without labels has its series anyway
        assert all(len(v) == len(counter._labelnames) for v in values), counter
