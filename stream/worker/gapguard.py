"""Every input record reaches the agent, in order: records Faust dropped are read again.

faust-streaming 0.15.3 can throw away records it has already fetched: around a restart with a
backlog (table recovery running, the flow stopped while a fetched batch is handed out) they
never reach the agent, while the client's position has moved past them. Seen in
tests/integration/test_worker_recovery.py as a run of 37 records of every partition skipped
after a restart, and as a new worker that fetched its whole backlog and processed none of it.
Those records would be lost, or commits stop at the hole for good.

The guard knows the next offset each input partition must deliver (the group's committed
offset after an assignment, then one past each record admitted). A record beyond it means a
hole: it is not processed, and the partition is sought back to the hole. A record below it
was delivered again after such a seek and has been processed already. A partition whose
client position ran ahead of the guard while nothing arrives for a while is sought back too.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Hashable, Mapping

from stream import metrics

log = logging.getLogger("leadstream.worker")


class Verdict(enum.Enum):
    NEXT = "next"  # process it
    REPEAT = "repeat"  # processed already: acknowledge, do not process
    HOLE = "hole"  # records before it never arrived: seek back, do not process


class GapGuard:
    """Pure bookkeeping; the agent does the seeking (`holes`, `stalled`)."""

    def __init__(self, stall_seconds: float = 3.0):
        self.next: dict[Hashable, int] = {}
        self.last_seen: dict[Hashable, float] = {}
        self.holes: dict[Hashable, int] = {}  # partition -> offset to seek back to
        self.stall_seconds = stall_seconds

    def expect(self, committed: Mapping[Hashable, int]) -> None:
        """After an assignment: each partition starts at its committed offset."""
        self.next = dict(committed)
        self.last_seen = dict.fromkeys(committed, time.monotonic())
        self.holes.clear()

    def admit(self, tp: Hashable, offset: int) -> Verdict:
        self.last_seen[tp] = time.monotonic()
        expected = self.next.get(tp)
        if expected is None or offset == expected:
            self.next[tp] = offset + 1
            self.holes.pop(tp, None)
            return Verdict.NEXT
        if offset < expected:
            return Verdict.REPEAT
        if tp not in self.holes:
            log.warning(
                "records %s..%s of %s never reached the worker; reading them again",
                expected,
                offset - 1,
                tp,
            )
            metrics.REFETCHES.labels(reason="hole").inc()
        self.holes[tp] = expected
        return Verdict.HOLE

    def stalled(self, positions: Mapping[Hashable, int | None]) -> dict[Hashable, int]:
        """Partitions the client has read past the guard while none of their records has
        arrived for `stall_seconds`: partition -> offset to seek back to."""
        now = time.monotonic()
        out = {}
        for tp, position in positions.items():
            expected = self.next.get(tp)
            quiet = now - self.last_seen.get(tp, now) >= self.stall_seconds
            if expected is not None and position is not None and position > expected and quiet:
                out[tp] = expected
                self.last_seen[tp] = now  # give the seek time to take effect
                log.warning(
                    "%s: the client has read to offset %s but no record from %s on reached "
                    "the worker; reading them again",
                    tp,
                    position,
                    expected,
                )
                metrics.REFETCHES.labels(reason="stall").inc()
        return out
