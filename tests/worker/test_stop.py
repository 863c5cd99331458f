"""A stop signal ends the worker within a bound, even when its shutdown hangs."""

from __future__ import annotations

import subprocess
import sys
import time

HANGING_SHUTDOWN = """
import time
import stream.worker.stopping as stopping
stopping.STOP_BOUND_SECONDS = 0.3
called = []
stopping.bounded_stop(lambda: called.append(1))()  # the signal; the shutdown then hangs:
assert called == [1]
time.sleep(30)
"""


def test_a_hanging_shutdown_is_ended_at_the_bound() -> None:
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", HANGING_SHUTDOWN], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - began < 15
    assert "did not stop within 0.3s of the signal; exiting" in done.stderr
