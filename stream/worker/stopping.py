"""A stop signal ends the worker within a bound, however its shutdown fares."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger("leadstream.worker")
STOP_BOUND_SECONDS = 20.0


def bounded_stop(on_signal: Callable[[], None]) -> Callable[[], None]:
    """A stop signal ends the process within `STOP_BOUND_SECONDS` (under Kubernetes' default
    30 s grace period), however the shutdown fares: aiokafka's consumer stop can hang
    retrying heartbeats after its group coordinator was marked dead in the middle of a
    rebalance (seen in tests/integration/test_scale_out.py: SIGTERM while a worker joined).
    By then the outputs have been flushed and the offsets commit what was landed; what was
    not is read again by the next owner, so exiting is safe."""

    def stop() -> None:
        def force() -> None:
            log.error(
                "the worker did not stop within %gs of the signal; exiting", STOP_BOUND_SECONDS
            )
            logging.shutdown()
            os._exit(0)

        timer = threading.Timer(STOP_BOUND_SECONDS, force)
        timer.daemon = True
        timer.start()
        on_signal()

    return stop
