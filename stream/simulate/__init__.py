"""Realistic lead journeys sent to a running collector in Segment's HTTP API format.

`build_journeys` is pure and seeded (same arguments, same messages, same messageIds);
`send` posts them to `/v1/batch` in event-time order; `leadstream simulate` wires the two.
"""

from stream.simulate.journeys import (
    SPAN_DAYS,
    build_journeys,
    default_start,
    ordered_messages,
    write_journeys,
)
from stream.simulate.messages import Journey, Message
from stream.simulate.personas import DEFAULT_WEIGHTS, PERSONAS, parse_weights
from stream.simulate.sender import SendReport, send

__all__ = [
    "DEFAULT_WEIGHTS",
    "PERSONAS",
    "SPAN_DAYS",
    "Journey",
    "Message",
    "SendReport",
    "build_journeys",
    "default_start",
    "ordered_messages",
    "parse_weights",
    "send",
    "write_journeys",
]
