"""The HTTP collector: Segment/RudderStack API, pixel and webhooks in, Kafka records out."""

from __future__ import annotations

from stream.collector.app import create_app, run
from stream.collector.producer import EventProducer, Record

__all__ = ["EventProducer", "Record", "create_app", "run"]
