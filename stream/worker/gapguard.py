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
client position (or high watermark) is ahead of the guard while nothing arrives for a while is
sought back too: a partition sought back has been seen to sit there, never fetched again.

The same release can lose acknowledgements across a rebalance: records the worker processed on
a partition it kept, whose commit then never moves (Faust commits only a run of acknowledged
offsets that starts at the committed one). Seen in tests/integration/test_scale_out.py as a
group with every record processed, nothing held and a lag that stayed for good. A partition
whose commit stays behind what the guard has admitted while the worker is idle is read again
from its committed offset: the records apply as no-ops (state watermarks) and are acknowledged
afresh.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Hashable, Mapping

from stream import metrics

log = logging.getLogger("leadstream.worker")
MAX_BACKOFF_SECONDS = 60.0  # the longest wait between two stall repairs of one partition


class Verdict(enum.Enum):
    NEXT = "next"  # process it
    REPEAT = "repeat"  # processed already: acknowledge, do not process
    HOLE = "hole"  # records before it never arrived: seek back, do not process


class GapGuard:
    """Pure bookkeeping; the agent does the seeking (`holes`, `stalled`)."""

    def __init__(self, stall_seconds: float = 3.0, busy_factor: float = 10.0):
        self.next: dict[Hashable, int] = {}
        self.last_seen: dict[Hashable, float] = {}
        self.behind_since: dict[Hashable, float] = {}  # commit behind the guard, idle, since
        self.holes: dict[Hashable, int] = {}  # partition -> offset to seek back to
        self.stall_seconds = stall_seconds
        # While records of other partitions keep arriving, one partition going quiet for a few
        # seconds (or a commit taking them) is backpressure, not a stall: a worker far behind
        # under load (a million-lead state) saw 475 false repairs in 30 minutes, each reading
        # hundreds of records again, and slowed from 1,300 to 90 events/s. A busy worker waits
        # `busy_factor` times longer before it repairs.
        self.busy_factor = busy_factor
        # Stall repairs of a partition in a row with nothing arriving in between: each doubles
        # the wait before the next (up to MAX_BACKOFF_SECONDS). A stall a seek does not clear
        # was seen sought every 3 s for 4 minutes, until one seek raced aiokafka's fetcher.
        # partition -> (repairs in a row, when the last was): a record arriving since (its
        # `last_seen` is later) ends the run, found here rather than per record in `admit`.
        self.repairs: dict[Hashable, tuple[int, float]] = {}

    def _patience(self, now: float) -> float:
        """How long a partition may be quiet (or a commit behind) before it is repaired."""
        latest = max(self.last_seen.values(), default=None)
        busy = latest is not None and now - latest < self.stall_seconds
        return self.stall_seconds * (self.busy_factor if busy else 1.0)

    def expect(self, committed: Mapping[Hashable, int]) -> None:
        """After an assignment: each partition starts at its committed offset."""
        self.next = dict(committed)
        self.last_seen = dict.fromkeys(committed, time.monotonic())
        self.holes.clear()
        self.behind_since.clear()
        self.repairs.clear()

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
        arrived for `stall_seconds` (ten times that while other partitions' records keep
        arriving): partition -> offset to seek back to."""
        now = time.monotonic()
        patience = self._patience(now)
        out = {}
        for tp, position in positions.items():
            expected = self.next.get(tp)
            seen = self.last_seen.get(tp, now)
            in_a_row, last = self.repairs.get(tp, (0, seen))
            if seen > last:  # a record arrived after the last repair: that stall is over
                in_a_row = 0
            wait = min(patience * 2**in_a_row, MAX_BACKOFF_SECONDS)
            quiet = now - seen >= wait
            if expected is not None and position is not None and position > expected and quiet:
                out[tp] = expected
                self.last_seen[tp] = now  # give the seek time to take effect
                self.repairs[tp] = (in_a_row + 1, now)
                log.warning(
                    "%s: the client has read (or could read) to offset %s but no record from "
                    "%s on reached the worker; reading them again",
                    tp,
                    position,
                    expected,
                )
                metrics.REFETCHES.labels(reason="stall").inc()
        return out

    def uncommitted(self, committed: Mapping[Hashable, int | None]) -> dict[Hashable, int]:
        """Partitions whose commit has stayed below what the guard admitted for twice
        `stall_seconds` (ten times longer while the worker is busy) while the worker held
        nothing of them: partition -> the committed
        offset to read again from (and expect next). Call only when the worker is idle."""
        now = time.monotonic()
        patience = 2 * self._patience(now)
        out = {}
        for tp, offset in committed.items():
            expected = self.next.get(tp)
            behind = expected is not None and offset is not None and offset < expected
            if not behind:
                self.behind_since.pop(tp, None)
                continue
            since = self.behind_since.setdefault(tp, now)
            if now - since >= patience and offset is not None:
                out[tp] = offset
                self.next[tp] = offset
                self.last_seen[tp] = now
                self.behind_since.pop(tp, None)
                log.warning(
                    "%s: records %s..%s were processed but their commit is stuck; reading "
                    "them again (they apply as no-ops)",
                    tp,
                    offset,
                    (expected or 0) - 1,
                )
                metrics.REFETCHES.labels(reason="commit").inc()
        return out
