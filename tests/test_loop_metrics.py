"""stream/metrics.py's lock-free counter and histogram (the worker's per-record metrics) are
exposed exactly as prometheus_client's own."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from stream import metrics
from stream.metrics import LoopCounter, LoopHistogram


def exposition(counter: type[Counter], histogram: type[Histogram]) -> list[str]:
    registry = CollectorRegistry()
    c = counter("t_events_total", "Events.", ["outcome"], registry=registry)
    h = histogram("t_seconds", "Seconds.", ["agent"], buckets=(0.01, 0.1, 1), registry=registry)
    plain = histogram("t_plain_seconds", "Seconds.", buckets=(0.5,), registry=registry)
    c.labels("applied").inc()
    c.labels(outcome="applied").inc(2.5)
    c.labels("duplicate")
    for value in (0.0, 0.01, 0.010001, 0.5, 1.0, 7.0, -1.0):
        h.labels("scoring").observe(value)
    plain.observe(0.5)
    plain.observe(0.6)
    text = generate_latest(registry).decode().splitlines()
    return [line for line in text if "_created" not in line]


def test_loop_metrics_expose_what_prometheus_clients_own_do() -> None:
    assert exposition(LoopCounter, LoopHistogram) == exposition(Counter, Histogram)


def test_a_loop_counter_refuses_to_go_down() -> None:
    with pytest.raises(ValueError):
        LoopCounter("t_down_total", "Down.", registry=CollectorRegistry()).inc(-1)


def test_the_workers_per_record_metrics_are_lock_free() -> None:
    for metric in (metrics.EVENTS_PROCESSED, metrics.TRANSITIONS, metrics.ORDER_HELD):
        assert isinstance(metric, LoopCounter)
    for hist in (metrics.PROCESSING_DURATION, metrics.EVENT_TO_SCORE, metrics.EVENT_TO_HANDOFF):
        assert isinstance(hist, LoopHistogram)
