"""Stopping asyncio tasks for sure.

A task's cancellation can be absorbed: Python 3.11's `asyncio.timeout` (redis-py and aiokafka
use it) turns a cancellation that arrives as its own deadline fires into a `TimeoutError`, and
a loop that rides out timeouts then goes on as if nothing had happened. A `gather` of the
cancelled tasks then waits forever (seen: a notifier's backlog metric task, "cancelling" but
asleep in its loop, held `stop()` for good). So a stop cancels again whatever still runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

RETRY_SECONDS = 0.5


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[Any]], retry_seconds: float = RETRY_SECONDS
) -> None:
    """Cancel `tasks` and wait until each has ended, cancelling again every `retry_seconds`
    those still running. Their exceptions are retrieved (not logged as never retrieved)."""
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=retry_seconds)
    for task in tasks:
        if not task.cancelled():
            task.exception()
