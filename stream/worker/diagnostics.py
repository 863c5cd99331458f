"""`kill -USR1 <worker pid>` logs every asyncio task's stack: what a worker that stopped
consuming is waiting for, without stopping it (thread stacks, e.g. py-spy's, show only an idle
event loop)."""

from __future__ import annotations

import asyncio
import io
import logging
import signal
from collections.abc import Callable
from typing import Any

log = logging.getLogger("leadstream.worker")


def dump_tasks(
    loops: Callable[[], list[asyncio.AbstractEventLoop]], state: Callable[[], str]
) -> None:
    out = io.StringIO()
    out.write(f"worker state: {state()}\n")
    for loop in [asyncio.get_running_loop(), *loops()]:
        tasks = asyncio.all_tasks(loop)
        out.write(f"{len(tasks)} asyncio tasks of {loop!r}:\n")
        for task in sorted(tasks, key=lambda t: t.get_name()):
            out.write(f"- {task.get_name()}\n")
            for where in awaiting(task.get_coro()):
                out.write(f"    {where}\n")
    log.warning("%s", out.getvalue())


def awaiting(coro: Any) -> list[str]:
    """The chain of awaits below a task's coroutine, outermost first (a task's own stack shows
    only its outermost frame)."""
    chain: list[str] = []
    while coro is not None and len(chain) < 40:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        if frame is not None:
            code = frame.f_code
            chain.append(f"{code.co_qualname} ({code.co_filename}:{frame.f_lineno})")
        inner = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
        if inner is None and frame is None:
            chain.append(repr(coro)[:200])
        coro = inner
    return chain


def install_task_dump(
    loops: Callable[[], list[asyncio.AbstractEventLoop]], state: Callable[[], str]
) -> None:
    """Within the running loop: SIGUSR1 logs `state()` and the tasks of this loop and of
    `loops()` (other event loops of the process, in threads of their own)."""
    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump_tasks, loops, state)
    except (NotImplementedError, RuntimeError, ValueError):
        log.info("no SIGUSR1 task dump here")
